/**
 * Reading the `mcpServers` config file used by Claude Desktop and VS Code, plus Keel's optional sections.
 *
 * ```json
 * {
 *   "mcpServers": {
 *     "github": {
 *       "command": "node",
 *       "args": ["github-server.js"],
 *       "env": { "GITHUB_TOKEN": "${GITHUB_TOKEN}" },
 *       "keel": { "breaker": { "waitDurationInOpen": 5000 }, "timeouts": { "tools": { "search": 10000 } } }
 *     },
 *     "docs": { "url": "https://docs.example.com/mcp", "headers": { "Authorization": "Bearer ${DOCS_TOKEN}" } }
 *   },
 *   "keel": { "defaults": { "pool": { "maxConnections": 4 }, "cache": { "policy": "lfu" } } }
 * }
 * ```
 *
 * - A server with `command` is stdio; one with `url` is Streamable HTTP, or legacy SSE with `"type": "sse"`.
 *   VS Code's `"servers"` key is accepted as well as `"mcpServers"`.
 * - `${VAR}` (and VS Code's `${env:VAR}`) is expanded from the environment in every string of a server
 *   entry. `env` and `headers` values are decoded to `Redacted`, so an expanded token never reaches a log.
 *   An unset variable is an error naming it and where it is used.
 * - Keel's sections `pool`, `breaker` and `timeouts` may appear under `keel.defaults` and under each
 *   server's `keel`; a server's section is merged over the defaults, key by key. `cache` is manager-wide
 *   (one cache serves every server) and lives under `keel.defaults` only.
 * - Every error is an {@link McpConfigError} that names the file, the path and the problem.
 * - The `McpConfig` service (`McpConfig.ts`) holds the decoded result for the layers built from it.
 *
 * @since 0.1.0
 */
import { readFile } from "node:fs/promises"
import { Effect, Schema } from "effect"
import { CircuitBreakerConfig, decode as decodeBreaker } from "./CircuitBreaker.ts"
import { ConnectionPoolConfig, PoolSettings } from "./ConnectionPool.ts"
import { configError, decodeServerConfig, McpConfigError, type ServerConfig } from "./ServerConfig.ts"
import { TimeoutsConfig } from "./Timeouts.ts"
import { ToolCacheConfig } from "./ToolCache.ts"

/**
 * Keel's per-server policies, in the encoded form written in a file (durations in milliseconds), every
 * key optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerPolicyInput {
  readonly pool?: Record<string, unknown> | undefined
  /** Only under `keel.defaults`. */
  readonly cache?: Record<string, unknown> | undefined
  readonly breaker?: Record<string, unknown> | undefined
  readonly timeouts?: Record<string, unknown> | undefined
}

/**
 * One server of a config: how to reach it, and its decoded policies (defaults merged in).
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerEntry {
  readonly name: string
  readonly config: ServerConfig
  readonly pool: PoolSettings
  readonly breaker: CircuitBreakerConfig
  readonly timeouts: TimeoutsConfig
}

/**
 * A decoded config file: what the `McpConfig` service holds.
 *
 * @since 0.2.0
 * @category models
 */
export interface McpConfigShape {
  readonly servers: ReadonlyArray<ServerEntry>
  /** The pool-wide config (defaults for every server, and the connect limit), from `keel.defaults.pool`. */
  readonly pool: ConnectionPoolConfig
  /** The tool cache config (manager-wide: one cache serves every server), from `keel.defaults.cache`. */
  readonly cache: ToolCacheConfig
  /** The `keel.defaults` sections as written, for servers added later at run time. */
  readonly defaults: ServerPolicyInput
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const VAR = /\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}/g

/** Expands `${VAR}` in every string of `value`; fails naming the variable and the path. */
const expand = (
  value: unknown,
  path: string,
  env: Record<string, string | undefined>
): Effect.Effect<unknown, McpConfigError> => {
  if (typeof value === "string") {
    const missing: Array<string> = []
    const out = value.replace(VAR, (_, name: string) => {
      const v = env[name]
      if (v === undefined) missing.push(name)
      return v ?? ""
    })
    return missing.length > 0
      ? Effect.fail(new McpConfigError({ path, message: `environment variable ${missing[0]} is not set` }))
      : Effect.succeed(out)
  }
  if (Array.isArray(value)) return Effect.forEach(value, (v, i) => expand(v, `${path}.${i}`, env))
  if (isRecord(value)) {
    return Effect.map(
      Effect.forEach(Object.entries(value), ([k, v]) => Effect.map(expand(v, `${path}.${k}`, env), (x) => [k, x] as const)),
      (entries) => Object.fromEntries(entries)
    )
  }
  return Effect.succeed(value)
}

/** Decodes one policy section with its Schema, naming `path` in errors. */
const section = <S extends Schema.Codec<any, any, never, never>>(
  schema: S,
  defaults: unknown,
  override: unknown,
  path: string
): Effect.Effect<S["Type"], McpConfigError> => {
  if (defaults !== undefined && !isRecord(defaults)) {
    return Effect.fail(new McpConfigError({ path: path.replace(/^mcpServers\.[^.]+\.keel/, "keel.defaults"), message: "Expected an object" }))
  }
  if (override !== undefined && !isRecord(override)) {
    return Effect.fail(new McpConfigError({ path, message: "Expected an object" }))
  }
  return Schema.decodeUnknownEffect(schema)({ ...defaults, ...override }, { errors: "first" }).pipe(
    Effect.mapError((e) => configError(path, e))
  ) as Effect.Effect<S["Type"], McpConfigError>
}

/** Maps a Claude Desktop / VS Code server entry onto {@link ServerConfig}'s input. */
const toServerInput = (entry: Record<string, unknown>): Record<string, unknown> => {
  const { keel: _keel, ...rest } = entry
  if (rest.type === undefined) {
    if (rest.command !== undefined) return { ...rest, type: "stdio" }
    if (rest.url !== undefined) return { ...rest, type: "http" }
  }
  if (rest.type === "streamable-http" || rest.type === "streamableHttp") return { ...rest, type: "http" }
  return rest
}

/**
 * Decodes one server entry as written in a file (`${VAR}` expanded from `env`), its Keel sections merged
 * over `defaults`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeServerEntry = (
  name: string,
  raw: unknown,
  defaults: ServerPolicyInput = {},
  env: Record<string, string | undefined> = process.env,
  path = `mcpServers.${name}`
): Effect.Effect<ServerEntry, McpConfigError> =>
  Effect.gen(function*() {
    if (!isRecord(raw)) return yield* new McpConfigError({ path, message: "Expected an object" })
    const expanded = (yield* expand(raw, path, env)) as Record<string, unknown>
    const config = yield* decodeServerConfig(toServerInput(expanded), path)
    return { name, config, ...(yield* decodePolicies(expanded.keel, defaults, `${path}.keel`)) }
  })

/**
 * Decodes a server's Keel sections (`pool`, `breaker`, `timeouts`) merged over `defaults`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodePolicies = (
  own: unknown,
  defaults: ServerPolicyInput = {},
  path = "keel"
): Effect.Effect<Pick<ServerEntry, "pool" | "breaker" | "timeouts">, McpConfigError> =>
  Effect.gen(function*() {
    if (own !== undefined && !isRecord(own)) return yield* new McpConfigError({ path, message: "Expected an object" })
    if (own?.cache !== undefined) {
      return yield* new McpConfigError({
        path: `${path}.cache`,
        message: "the tool cache is manager-wide: set it under keel.defaults.cache"
      })
    }
    return {
      pool: yield* section(PoolSettings, defaults.pool, own?.pool, `${path}.pool`),
      // The breaker's own decoder adds the checks across fields (successThresholdToClose <= permittedCallsInHalfOpen).
      breaker: yield* Effect.flatMap(
        section(CircuitBreakerConfig, defaults.breaker, own?.breaker, `${path}.breaker`),
        (breaker) => decodeBreaker(breaker, `${path}.breaker`)
      ),
      timeouts: yield* section(TimeoutsConfig, defaults.timeouts, own?.timeouts, `${path}.timeouts`)
    }
  })

/**
 * Decodes a parsed config (the JSON value of a file). `env` is where `${VAR}` comes from.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeConfig = (
  json: unknown,
  env: Record<string, string | undefined> = process.env
): Effect.Effect<McpConfigShape, McpConfigError> =>
  Effect.gen(function*() {
    if (!isRecord(json)) return yield* new McpConfigError({ path: "(root)", message: "Expected a JSON object" })
    const key = json.mcpServers !== undefined ? "mcpServers" : json.servers !== undefined ? "servers" : undefined
    if (key === undefined) return yield* new McpConfigError({ path: "mcpServers", message: "Missing key: expected an object of servers" })
    const servers = json[key]
    if (!isRecord(servers)) return yield* new McpConfigError({ path: key, message: "Expected an object of servers" })
    const keel = json.keel
    if (keel !== undefined && !isRecord(keel)) return yield* new McpConfigError({ path: "keel", message: "Expected an object" })
    const defaults = (keel?.defaults ?? {}) as ServerPolicyInput
    if (!isRecord(defaults)) return yield* new McpConfigError({ path: "keel.defaults", message: "Expected an object" })

    const entries: Array<ServerEntry> = []
    for (const [name, raw] of Object.entries(servers)) {
      entries.push(yield* decodeServerEntry(name, raw, defaults, env, `${key}.${name}`))
    }
    const cache = yield* section(ToolCacheConfig, undefined, defaults.cache, "keel.defaults.cache")
    const pool = yield* section(ConnectionPoolConfig, undefined, defaults.pool, "keel.defaults.pool")
    return { servers: entries, pool, cache, defaults }
  })

/** Where a JSON text stops parsing, as "at line L, column C" (found by parsing prefixes, never by quoting). */
const jsonErrorPosition = (text: string): string => {
  let ok = 0
  try {
    JSON.parse(text)
    return ""
  } catch (e) {
    const m = /position (\d+)/.exec((e as Error).message)
    ok = m?.[1] !== undefined ? Number(m[1]) : text.length
  }
  const before = text.slice(0, ok)
  const line = before.split("\n").length
  const column = ok - before.lastIndexOf("\n")
  return `at line ${line}, column ${column}`
}

/**
 * Reads and decodes a config file. Errors name the file, the path in it and the problem.
 *
 * @since 0.1.0
 * @category decoding
 */
export const loadConfigFile = (
  file: string,
  env: Record<string, string | undefined> = process.env
): Effect.Effect<McpConfigShape, McpConfigError> =>
  Effect.gen(function*() {
    const text = yield* Effect.tryPromise({
      try: () => readFile(file, "utf8"),
      catch: (e) => new McpConfigError({ path: "(file)", message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` })
    })
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      // Node's message quotes the text around the error, which may be a token: keep only the position.
      catch: () => new McpConfigError({ path: "(root)", message: `invalid JSON ${jsonErrorPosition(text)}` })
    })
    return yield* decodeConfig(json, env)
  }).pipe(
    Effect.mapError((e) => new McpConfigError({ path: `${file}: ${e.path}`, message: e.message }))
  )
