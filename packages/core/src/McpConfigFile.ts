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
 * - Durations are numbers of milliseconds (`5000`) or strings such as `"5 seconds"` / `"2 minutes"`; a
 *   timeout of `null` means none.
 * - Unknown keys are errors, at every level of a server entry and of Keel's sections, naming the path and,
 *   when one is close, the key that was probably meant (`mcpServers.github.comand: unknown key (did you mean
 *   "command"?)`). Keys other MCP clients write in server entries (`disabled`, `autoApprove`,
 *   `alwaysAllow`, `description`, `timeout`, `envFile`, `transportType`, `name`) are accepted and ignored.
 *   At the top level, where other settings of the application may live, only keys close to `mcpServers`,
 *   `servers` or `keel` are errors.
 * - An error in `keel.defaults` is reported at its own path (`keel.defaults.pool.maxConnections`), once.
 * - Every error is an {@link McpConfigError} that names the file, the path and the problem.
 * - The `McpConfig` service (`McpConfig.ts`) holds the decoded result for the layers built from it.
 *
 * @since 0.1.0
 */
import { readFile } from "node:fs/promises"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { CircuitBreakerConfig, decode as decodeBreaker } from "./CircuitBreaker.ts"
import { ConnectionPoolConfig, PoolSettings } from "./ConnectionPool.ts"
import {
  configError,
  decodeServerConfig,
  HttpServerConfig,
  McpConfigError,
  type ServerConfig,
  SseServerConfig,
  StdioServerConfig
} from "./ServerConfig.ts"
import { TimeoutsConfig } from "./Timeouts.ts"
import { ToolCacheConfig } from "./ToolCache.ts"
import { ToolFilterConfig } from "./ToolFilter.ts"

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
  /** Only per server: `keel.tools` (`allow`, `deny`). */
  readonly tools?: Record<string, unknown> | undefined
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
  /** `keel.tools`: the tools offered (allow / deny, names or globs; see `ToolFilter`). None: every tool. */
  readonly tools?: ToolFilterConfig | undefined
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


// ---------------------------------------------------------------------------------------------------------
// Unknown keys and durations
// ---------------------------------------------------------------------------------------------------------

/** The edit distance between two short keys (case-insensitive), for "did you mean". */
const distance = (a: string, b: string): number => {
  const x = a.toLowerCase()
  const y = b.toLowerCase()
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j)
  for (let i = 1; i <= x.length; i++) {
    const row = [i]
    for (let j = 1; j <= y.length; j++) {
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1)))
    }
    prev = row
  }
  return prev[y.length]!
}

/** The known key closest to `key`, when close enough to be a typo of it. */
const closest = (key: string, known: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = Infinity
  for (const k of known) {
    const d = distance(key, k)
    if (d < bestDistance) {
      best = k
      bestDistance = d
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 4)) ? best : undefined
}

/** A key's path for messages: the key is cut and escaped (it is the user's text, possibly long). */
const keyPath = (path: string, key: string): string => `${path}.${key.length > 60 ? `${key.slice(0, 60)}…` : key}`.replace(
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u001f\u007f]/g,
  (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`
)

/** Fails on the first key of `value` not in `known` (nor in `tolerated`), naming its path and a likely fix. */
const checkKeys = (
  value: Record<string, unknown>,
  known: ReadonlyArray<string>,
  path: string,
  tolerated: ReadonlyArray<string> = []
): Effect.Effect<void, McpConfigError> => {
  for (const key of Object.keys(value)) {
    if (known.includes(key) || tolerated.includes(key)) continue
    const meant = closest(key, known)
    return Effect.fail(
      new McpConfigError({ path: keyPath(path, key), message: `unknown key${meant !== undefined ? ` (did you mean "${meant}"?)` : ""}` })
    )
  }
  return Effect.void
}

/** Sections that only `ScaleOut`'s layers read (see the README's "Scale-out on Redis"). */
const SCALE_OUT_SERVER_KEYS = ["rateLimit", "maxConcurrentCalls"] as const

/**
 * A scale-out section given to the in-process graph: say where it belongs instead of "unknown key", since
 * silently running without the shared state or the limits would be worse than failing.
 */
const scaleOutOnly = (path: string) =>
  new McpConfigError({
    path,
    message: "read only by ScaleOut's layers: load this file with ScaleOut.layerFile / ScaleOut.layerConfig " +
      "(McpClientManager.layerFile runs in-process, without shared state or limits)"
  })

/** The field names of a Struct schema. */
const fieldsOf = (schema: { readonly fields: Record<string, unknown> }): ReadonlyArray<string> => Object.keys(schema.fields)

/** The keys a server entry may have, by transport, besides `keel`: the fields of its Schema. */
const SERVER_KEYS = {
  stdio: fieldsOf(StdioServerConfig),
  http: fieldsOf(HttpServerConfig),
  sse: fieldsOf(SseServerConfig)
} as const

/** Keys other MCP clients (Claude Desktop, VS Code, Cline, Cursor) write in a server entry; Keel ignores them. */
const FOREIGN_SERVER_KEYS = ["disabled", "autoApprove", "alwaysAllow", "description", "timeout", "envFile", "transportType", "name"]

const ROOT_KEYS = ["mcpServers", "servers", "keel"]

/** Whether a field's schema decodes a number of milliseconds into a `Duration`. */
const isDurationField = (field: unknown): boolean => {
  const decoded = Schema.decodeUnknownOption(Schema.Struct({ d: field as Schema.Codec<unknown, unknown> }))({ d: 1 })
  return decoded._tag === "Some" && Duration.isDuration((decoded.value as { d: unknown }).d)
}

const durationFieldCache = new WeakMap<object, ReadonlySet<string>>()

/** The duration fields of a Struct schema (computed once per schema). */
const durationFields = (schema: { readonly fields: Record<string, unknown> }): ReadonlySet<string> => {
  let set = durationFieldCache.get(schema)
  if (set === undefined) {
    set = new Set(Object.keys(schema.fields).filter((k) => isDurationField(schema.fields[k])))
    durationFieldCache.set(schema, set)
  }
  return set
}

/** `"5 seconds"` (or a `Duration`, from code) → 5000; anything else as it is (decoding then names the path of a bad value). */
const stringToMillis = (v: unknown): unknown => {
  if (Duration.isDuration(v)) return Duration.toMillis(v)
  if (typeof v !== "string") return v
  const d = Duration.fromInput(v as Duration.Input)
  return d._tag === "Some" ? Duration.toMillis(d.value) : v
}

/**
 * A section as written in a file, with its durations in milliseconds: strings such as `"5 seconds"` in
 * duration fields become numbers; in `timeouts`, `null` ("no timeout") becomes `Infinity`, and the values
 * of `timeouts.tools` are durations too.
 */
const normalizeSection = (
  schema: { readonly fields: Record<string, unknown> },
  value: Record<string, unknown>,
  isTimeouts: boolean
): Record<string, unknown> => {
  const durations = durationFields(schema)
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    if (isTimeouts && k === "tools" && isRecord(v)) {
      out[k] = Object.fromEntries(Object.entries(v).map(([t, d]) => [t, d === null ? Infinity : stringToMillis(d)]))
    } else if (durations.has(k)) {
      out[k] = isTimeouts && v === null ? Infinity : stringToMillis(v)
    } else {
      out[k] = v
    }
  }
  return out
}

/** Decodes one policy section with its Schema, naming `path` in errors. */
const section = <S extends Schema.Codec<any, any, never, never> & { readonly fields: Record<string, unknown> }>(
  schema: S,
  defaults: unknown,
  override: unknown,
  path: string
): Effect.Effect<S["Type"], McpConfigError> => {
  if (defaults !== undefined && !isRecord(defaults)) {
    return Effect.fail(new McpConfigError({ path: path.replace(/^.*\.keel(?=\.)/, "keel.defaults"), message: "Expected an object" }))
  }
  if (override !== undefined && !isRecord(override)) {
    return Effect.fail(new McpConfigError({ path, message: "Expected an object" }))
  }
  const isTimeouts = (schema as unknown) === TimeoutsConfig
  return Effect.andThen(
    override !== undefined ? checkKeys(override, fieldsOf(schema), path) : Effect.void,
    Schema.decodeUnknownEffect(schema)(
      normalizeSection(schema, { ...defaults, ...override }, isTimeouts),
      { errors: "first" }
    ).pipe(Effect.mapError((e) => configError(path, e)))
  ) as Effect.Effect<S["Type"], McpConfigError>
}

/** Maps a Claude Desktop / VS Code server entry onto {@link ServerConfig}'s input. */
const toServerInput = (entry: Record<string, unknown>): Record<string, unknown> => {
  const { keel: _keel, ...all } = entry
  const rest: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(all)) if (!FOREIGN_SERVER_KEYS.includes(k)) rest[k] = v
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
    const input = toServerInput(raw)
    const type = input.type === "stdio" || input.type === "http" || input.type === "sse" ? input.type : undefined
    const known = type !== undefined
      ? [...SERVER_KEYS[type], "keel"]
      : [...new Set([...SERVER_KEYS.stdio, ...SERVER_KEYS.http, ...SERVER_KEYS.sse, "keel"])]
    yield* checkKeys(raw, known, path, FOREIGN_SERVER_KEYS)
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
): Effect.Effect<Pick<ServerEntry, "pool" | "breaker" | "timeouts" | "tools">, McpConfigError> =>
  Effect.gen(function*() {
    if (own !== undefined && !isRecord(own)) return yield* new McpConfigError({ path, message: "Expected an object" })
    if (own !== undefined) {
      for (const k of SCALE_OUT_SERVER_KEYS) if (k in own) return yield* scaleOutOnly(`${path}.${k}`)
      yield* checkKeys(own, ["pool", "breaker", "timeouts", "cache", "tools"], path)
    }
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
      timeouts: yield* section(TimeoutsConfig, defaults.timeouts, own?.timeouts, `${path}.timeouts`),
      ...(own?.tools !== undefined ? { tools: yield* section(ToolFilterConfig, undefined, own.tools, `${path}.tools`) } : {})
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
    for (const k of Object.keys(json)) {
      // Other settings of the application may share the file: only near misses of Keel's keys are errors.
      const meant = ROOT_KEYS.includes(k) ? undefined : closest(k, ROOT_KEYS)
      if (meant !== undefined) return yield* new McpConfigError({ path: keyPath("", k).slice(1), message: `unknown key (did you mean "${meant}"?)` })
    }
    const key = json.mcpServers !== undefined ? "mcpServers" : json.servers !== undefined ? "servers" : undefined
    if (key === undefined) return yield* new McpConfigError({ path: "mcpServers", message: "Missing key: expected an object of servers" })
    const servers = json[key]
    if (!isRecord(servers)) return yield* new McpConfigError({ path: key, message: "Expected an object of servers" })
    const keel = json.keel
    if (keel !== undefined && !isRecord(keel)) return yield* new McpConfigError({ path: "keel", message: "Expected an object" })
    if (keel !== undefined) {
      for (const k of Object.keys(keel)) {
        if (k === "defaults") continue
        if (k === "redis") return yield* scaleOutOnly("keel.redis")
        // `keel.poool` / `keel.pool`: the sections live under `keel.defaults`.
        const section = closest(k, ["pool", "cache", "breaker", "timeouts"])
        const meant = section !== undefined ? `defaults.${section}` : closest(k, ["defaults"])
        return yield* new McpConfigError({ path: keyPath("keel", k), message: `unknown key${meant !== undefined ? ` (did you mean "${meant}"?)` : ""}` })
      }
    }
    const defaults = (keel?.defaults ?? {}) as ServerPolicyInput
    if (!isRecord(defaults)) return yield* new McpConfigError({ path: "keel.defaults", message: "Expected an object" })
    yield* checkKeys(defaults as Record<string, unknown>, ["pool", "cache", "breaker", "timeouts"], "keel.defaults")
    // The defaults on their own first, so an error in them is reported at its own path, not a server's.
    yield* validateDefaults(defaults)

    const entries: Array<ServerEntry> = []
    for (const [name, raw] of Object.entries(servers)) {
      entries.push(yield* decodeServerEntry(name, raw, defaults, env, `${key}.${name}`))
    }
    const cache = yield* section(ToolCacheConfig, undefined, defaults.cache, "keel.defaults.cache")
    const pool = yield* section(ConnectionPoolConfig, undefined, defaults.pool, "keel.defaults.pool")
    return { servers: entries, pool, cache, defaults }
  })

/** Decodes each `keel.defaults` section alone (errors at `keel.defaults.<section>.<field>`). */
const validateDefaults = (defaults: ServerPolicyInput): Effect.Effect<void, McpConfigError> =>
  Effect.gen(function*() {
    if (defaults.pool !== undefined) yield* section(ConnectionPoolConfig, undefined, defaults.pool, "keel.defaults.pool")
    if (defaults.breaker !== undefined) {
      yield* Effect.flatMap(
        section(CircuitBreakerConfig, undefined, defaults.breaker, "keel.defaults.breaker"),
        (breaker) => decodeBreaker(breaker, "keel.defaults.breaker")
      )
    }
    if (defaults.timeouts !== undefined) yield* section(TimeoutsConfig, undefined, defaults.timeouts, "keel.defaults.timeouts")
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
