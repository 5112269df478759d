/**
 * The config sections of Keel's scale-out on Redis, decoded with Schema into path-named
 * {@link McpConfigError}s, from the same `mcpServers` file `McpConfigFile` reads:
 *
 * ```json
 * {
 *   "mcpServers": {
 *     "github": {
 *       "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
 *       "keel": { "rateLimit": { "limit": 5000, "window": 3600000 }, "maxConcurrentCalls": 8 }
 *     }
 *   },
 *   "keel": { "redis": { "url": "redis://:${REDIS_PASSWORD}@10.0.0.5:6379", "keyPrefix": "agents:" } }
 * }
 * ```
 *
 * - `keel.redis` (optional; without it everything stays in-process): `url` (`redis://` or `rediss://`,
 *   decoded to `Redacted`: it may carry the password), `password` (`Redacted`, instead of putting it in the
 *   URL), `keyPrefix` (default `keel:`; every key and the pub/sub channel start with it), `commandTimeout`
 *   (ms a command may take before Keel treats Redis as stalled; default 100), `connectTimeout` (default
 *   1000), `retryInterval` (after a failure, how long Keel stays on local state before trying Redis again;
 *   default 1000), `breakerLease` (how long past an opened breaker's probe time the other replicas wait
 *   for the owner's probe result before probing themselves; default 5000).
 * - per server `keel.rateLimit` (also under `keel.defaults`): `limit` (≥ 1), `window` (ms),
 *   `algorithm` `fixed-window` | `token-bucket` (default `fixed-window`), `onExceeded` `fail` (a
 *   `RateLimitedError` with `retryAfter`) | `wait` (up to the call's deadline); default `fail`.
 * - per server `keel.maxConcurrentCalls` (also under `keel.defaults`): at most that many calls in flight
 *   to the server from this process (a local bulkhead); further calls queue, bounded by their deadline.
 *
 * `${VAR}` is expanded in `keel.redis` like in server entries; an unset variable is an error naming it.
 *
 * @since 0.3.0
 */
import { readFile } from "node:fs/promises"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { configError, McpConfigError } from "./ConfigSchema.ts"

const RedisUrl = Schema.String.check(
  Schema.makeFilter((s: string) => /^rediss?:\/\/[^\s]+$/.test(s) || "Expected a redis:// or rediss:// URL")
)

const positive = Schema.makeFilter((d: Duration.Duration) => Duration.toMillis(d) > 0 || "Expected a positive duration")
const PositiveMillis = (defaultMillis: number) =>
  Schema.DurationFromMillis.check(positive).pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultMillis)))

/**
 * The `keel.redis` section.
 *
 * @since 0.3.0
 * @category models
 */
export const RedisConfig = Schema.Struct({
  url: Schema.RedactedFromValue(RedisUrl),
  password: Schema.optionalKey(Schema.RedactedFromValue(Schema.String)),
  keyPrefix: Schema.String.check(Schema.isMinLength(1)).pipe(Schema.withDecodingDefaultKey(Effect.succeed("keel:"))),
  commandTimeout: PositiveMillis(100),
  connectTimeout: PositiveMillis(1_000),
  retryInterval: PositiveMillis(1_000),
  breakerLease: PositiveMillis(5_000)
})

/**
 * @since 0.3.0
 * @category models
 */
export type RedisConfig = typeof RedisConfig.Type

/**
 * A server's `keel.rateLimit`.
 *
 * @since 0.3.0
 * @category models
 */
export const RateLimitConfig = Schema.Struct({
  limit: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  window: Schema.DurationFromMillis.check(
    Schema.makeFilter((d: Duration.Duration) => Duration.toMillis(d) >= 1 || "Expected a window of at least 1 ms")
  ),
  algorithm: Schema.Literals(["fixed-window", "token-bucket"]).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed("fixed-window" as const))
  ),
  onExceeded: Schema.Literals(["fail", "wait"]).pipe(Schema.withDecodingDefaultKey(Effect.succeed("fail" as const)))
})

/**
 * @since 0.3.0
 * @category models
 */
export type RateLimitConfig = typeof RateLimitConfig.Type

/**
 * One server's limits: an optional rate limit and an optional bulkhead.
 *
 * @since 0.3.0
 * @category models
 */
export interface ServerLimitsConfig {
  readonly rateLimit: RateLimitConfig | undefined
  readonly maxConcurrentCalls: number | undefined
}

/**
 * What the scale-out modules read from a config file.
 *
 * @since 0.3.0
 * @category models
 */
export interface ScaleOutConfig {
  /** `None`: no `keel.redis` section, everything in-process. */
  readonly redis: Option.Option<RedisConfig>
  readonly servers: ReadonlyMap<string, ServerLimitsConfig>
  /** `keel.defaults` limits, for servers added at run time. */
  readonly defaults: ServerLimitsConfig
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const VAR = /\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}/g

const expandString = (
  value: unknown,
  path: string,
  env: Record<string, string | undefined>
): Effect.Effect<unknown, McpConfigError> => {
  if (typeof value !== "string") return Effect.succeed(value)
  let missing: string | undefined
  const out = value.replace(VAR, (_, name: string) => {
    const v = env[name]
    if (v === undefined) missing ??= name
    return v ?? ""
  })
  return missing !== undefined
    ? Effect.fail(new McpConfigError({ path, message: `environment variable ${missing} is not set` }))
    : Effect.succeed(out)
}

const decodeWith = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S, value: unknown, path: string) =>
  Schema.decodeUnknownEffect(schema)(value, { errors: "first", onExcessProperty: "error" }).pipe(
    Effect.mapError((e) => configError(path, e))
  )

/**
 * Decodes a `keel.redis` section as written in a file (`path` names it in errors).
 *
 * @since 0.3.0
 * @category decoding
 */
export const decodeRedis = (
  raw: unknown,
  env: Record<string, string | undefined> = process.env,
  path = "keel.redis"
): Effect.Effect<RedisConfig, McpConfigError> =>
  Effect.gen(function*() {
    if (!isRecord(raw)) return yield* new McpConfigError({ path, message: "Expected an object" })
    const expanded: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(raw)) expanded[k] = yield* expandString(v, `${path}.${k}`, env)
    return yield* decodeWith(RedisConfig, expanded, path)
  })

/**
 * Decodes a server's (or `keel.defaults`') `rateLimit` and `maxConcurrentCalls`, merged over `defaults`.
 *
 * @since 0.3.0
 * @category decoding
 */
export const decodeLimits = (
  own: unknown,
  defaults: ServerLimitsConfig = { rateLimit: undefined, maxConcurrentCalls: undefined },
  path = "keel"
): Effect.Effect<ServerLimitsConfig, McpConfigError> =>
  Effect.gen(function*() {
    if (own === undefined) return defaults
    if (!isRecord(own)) return yield* new McpConfigError({ path, message: "Expected an object" })
    const rateLimit = own.rateLimit === undefined
      ? defaults.rateLimit
      : yield* decodeWith(RateLimitConfig, own.rateLimit, `${path}.rateLimit`)
    const maxConcurrentCalls = own.maxConcurrentCalls === undefined
      ? defaults.maxConcurrentCalls
      : yield* decodeWith(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)), own.maxConcurrentCalls, `${path}.maxConcurrentCalls`)
    return { rateLimit, maxConcurrentCalls }
  })

/**
 * Decodes the scale-out sections of a parsed config file (the JSON value).
 *
 * @since 0.3.0
 * @category decoding
 */
export const decodeScaleOut = (
  json: unknown,
  env: Record<string, string | undefined> = process.env
): Effect.Effect<ScaleOutConfig, McpConfigError> =>
  Effect.gen(function*() {
    if (!isRecord(json)) return yield* new McpConfigError({ path: "(root)", message: "Expected a JSON object" })
    const keel = json.keel
    if (keel !== undefined && !isRecord(keel)) return yield* new McpConfigError({ path: "keel", message: "Expected an object" })
    const redis = keel?.redis === undefined ? Option.none() : Option.some(yield* decodeRedis(keel.redis, env))
    const defaults = yield* decodeLimits(keel?.defaults, undefined, "keel.defaults")
    const key = json.mcpServers !== undefined ? "mcpServers" : "servers"
    const servers = new Map<string, ServerLimitsConfig>()
    const entries = json[key]
    if (isRecord(entries)) {
      for (const [name, entry] of Object.entries(entries)) {
        const own = isRecord(entry) ? entry.keel : undefined
        servers.set(name, yield* decodeLimits(own, defaults, `${key}.${name}.keel`))
      }
    }
    return { redis, servers, defaults }
  })

/**
 * `json` without the scale-out sections (`keel.redis`, and `rateLimit` / `maxConcurrentCalls` under
 * `keel.defaults` and each server's `keel`), for `McpConfig`'s decoder, which rejects keys it does not know.
 *
 * @since 0.3.0
 * @category decoding
 */
export const withoutScaleOut = (json: unknown): unknown => {
  if (!isRecord(json)) return json
  const dropLimits = (keel: unknown): unknown => {
    if (!isRecord(keel)) return keel
    const { rateLimit: _r, maxConcurrentCalls: _m, ...rest } = keel
    return rest
  }
  const out: Record<string, unknown> = { ...json }
  if (isRecord(json.keel)) {
    const { redis: _redis, ...keel } = json.keel
    out.keel = keel.defaults === undefined ? keel : { ...keel, defaults: dropLimits(keel.defaults) }
  }
  for (const key of ["mcpServers", "servers"]) {
    const servers = json[key]
    if (!isRecord(servers)) continue
    out[key] = Object.fromEntries(Object.entries(servers).map(([name, entry]) =>
      [name, isRecord(entry) && entry.keel !== undefined ? { ...entry, keel: dropLimits(entry.keel) } : entry]
    ))
  }
  return out
}

/**
 * Reads and parses a config file (errors name the file).
 *
 * @since 0.3.0
 * @category decoding
 */
export const readConfigFile = (file: string): Effect.Effect<unknown, McpConfigError> =>
  Effect.tryPromise({
    try: () => readFile(file, "utf8").then((text) => JSON.parse(text) as unknown),
    catch: (e) =>
      new McpConfigError({
        path: `${file}: (file)`,
        message: e instanceof SyntaxError ? "invalid JSON" : `cannot read: ${(e as NodeJS.ErrnoException).code ?? "error"}`
      })
  })

/**
 * Reads a config file and decodes its scale-out sections; errors name the file and the path.
 *
 * @since 0.3.0
 * @category decoding
 */
export const loadScaleOutFile = (
  file: string,
  env: Record<string, string | undefined> = process.env
): Effect.Effect<ScaleOutConfig, McpConfigError> =>
  Effect.tryPromise({
    try: () => readFile(file, "utf8").then((text) => JSON.parse(text) as unknown),
    catch: () => new McpConfigError({ path: "(file)", message: "cannot read or parse the file" })
  }).pipe(
    Effect.flatMap((json) => decodeScaleOut(json, env)),
    Effect.mapError((e) => new McpConfigError({ path: `${file}: ${e.path}`, message: e.message }))
  )

/**
 * The password, from `password` or else from the URL, for display-free use by the client.
 *
 * @since 0.3.0
 * @category models
 */
export const redisClientOptions = (config: RedisConfig): { readonly url: string; readonly password?: string } => ({
  url: Redacted.value(config.url),
  ...(config.password !== undefined ? { password: Redacted.value(config.password) } : {})
})
