/**
 * `ToolCache`: the MCP tool list of each server, cached. Agents ask for tools constantly; a warm
 * `tools/list` is a round trip of milliseconds, a hit here is well under a microsecond.
 *
 * It is a {@link KeyedCache} specialised for `tools/list` results, keyed by server (and by credential for
 * `cacheScope: "private"` results):
 *
 * - **One fetch per miss.** 100 concurrent `get`s for a server that is not cached send one `tools/list`.
 * - **Failures are not cached**; the next `get` asks the server again.
 * - **Server hints (SEP-2549, spec 2026-07-28).** A result's positive `ttlMs` sets that entry's TTL (clamped
 *   to `maxTimeToLive`, 24 h by default, as the SDK does). Without a hint the config's `timeToLive` applies.
 *   `overrideServerTtl: true` makes the config's TTL win.
 * - **`ttlMs: 0`** is what every SDK v2 server sends on 2026-07-28 unless its author set a hint (measured:
 *   the demo server, built on `@modelcontextprotocol/server` 2.4 with no hint configured, answers
 *   `ttlMs: 0, cacheScope: "private"`). Taken literally it makes every `callTool` fetch `tools/list` first
 *   (it did: a 2026 session cost one extra round trip per call). So by default (`zeroTtl: "until-changed"`)
 *   a zero TTL is read as "no freshness promise": the list is kept for the config's `timeToLive` and dropped
 *   at once by the server's `list_changed` (which Keel receives on every revision, through
 *   `subscriptions/listen` on 2026-07-28). `zeroTtl: "respect"` never keeps such a list (every `get`
 *   fetches), for servers whose lists change without notice.
 * - **`cacheScope`.** A `"public"` result is shared by every caller of that server. A `"private"` result
 *   (and, as in the SDK, a result with no hint) is stored under `[server, credential]` and never served
 *   to another credential. Callers that pass no `credential` share one slot per server: the single-tenant
 *   posture, the same as the SDK's default `cachePartition: ""`. The `cacheScope` config field forces one
 *   scope for every result.
 * - **Invalidation on `notifications/tools/list_changed`**, whatever TTL remains: {@link ToolCacheShape.invalidate}
 *   drops a server's entries and detaches an in-flight fetch, so a list fetched before the change is never
 *   stored after it. {@link ToolCacheShape.watch} wires a connection's `toolListChanged` stream to it for
 *   the life of a scope.
 * - **Time** is Effect's `Clock`: a fresh single-tenant hit reads the `Clock` that was in context when the
 *   cache was built (so a `TestClock` in the test that builds it drives it); everything else reads the
 *   calling fiber's.
 * - **Stale-while-revalidate** (`staleWhileRevalidate`): serve the last good list while a refresh runs,
 *   or while the server is down.
 * - **Immutability.** Cached results are deep-frozen once per fetch, so a caller cannot mutate what other
 *   callers will be served (the seed library handed out shallow copies that leaked mutation).
 *
 * Metrics are {@link KeyedCache}'s with `cache = "tools"` (or your `name`) and `server = <server>` on
 * requests, loads and fetch duration.
 *
 * ## Why Keel wraps `listTools` instead of plugging into the SDK's `ResponseCacheStore`
 *
 * SDK v2's `ResponseCacheStore` is the seam for *storage*, and it is too low for the guarantees this
 * module makes: (1) the SDK has no single-flight — each concurrent `listTools()` does its own
 * `store.get`, misses, and sends its own `tools/list`, so 100 concurrent lookups would be 100 fetches
 * whatever the store does; (2) the store holds JSON strings that the SDK `JSON.parse`s on every hit, so a
 * hit costs tens of microseconds for a real tool list, not < 1 µs; (3) the SDK serves from the store
 * only when the result carries `ttlMs` (its `defaultCacheTtlMs` is 0), and partitions by the server's
 * self-reported `serverInfo`, not by Keel's server name; (4) the same store entry backs the SDK's
 * per-connection `callTool` output-schema validation, which a capacity-evicting shared store would
 * silently undercut. So Keel caches above the SDK: `get(server, fetch)` around a connection's
 * `listTools()` (McpClient's default `cacheMode: "bypass"` keeps the SDK from serving its own copy).
 * One `ToolCache` is shared by every pooled connection to a server, because its key is the server name,
 * not a connection, and the SDK's hint semantics (`ttlMs` clamp, `private` by default, partition per
 * credential, `list_changed` eviction that beats an in-flight fetch) are kept.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { McpClient } from "@keel/core"
 * import { ToolCache } from "@keel/core/ToolCache"
 *
 * const program = Effect.gen(function*() {
 *   const tools = yield* ToolCache
 *   const client = yield* McpClient.connect("github", config)
 *   yield* tools.watch(client) // list_changed → invalidate("github")
 *   const { tools: list } = yield* tools.list(client) // miss: one tools/list
 *   const again = yield* tools.list(client) // hit
 *   console.log((yield* tools.stats).hitRate) // 0.5
 * }).pipe(Effect.scoped, Effect.provide(ToolCache.layer({ policy: "lru", capacity: 100, timeToLive: "10 minutes" })))
 * ```
 *
 * @since 0.1.0
 */
import type { ListToolsResult } from "@modelcontextprotocol/client"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as EvictionPolicy from "./EvictionPolicy.ts"
import * as KeyedCache from "./KeyedCache.ts"

// -----------------------------------------------------------------------------
// Config
// -----------------------------------------------------------------------------

/**
 * Tool cache config: {@link KeyedCache.KeyedCacheConfig}'s fields (defaults: 100 entries, `lru`, 5 min,
 * no stale-while-revalidate) plus:
 *
 * | field               | default   | meaning                                                           |
 * | ------------------- | --------- | ----------------------------------------------------------------- |
 * | `overrideServerTtl` | `false`   | `true`: ignore the server's `ttlMs` and use `timeToLive`           |
 * | `cacheScope`        | absent    | `"public"` / `"private"`: force this scope, whatever the server says |
 * | `maxTimeToLive`     | 24 hours  | upper bound on a server's `ttlMs` (a server cannot pin an entry)   |
 * | `zeroTtl`           | `"until-changed"` | a `ttlMs: 0` result: kept for `timeToLive` until `list_changed`, or `"respect"`: never kept |
 *
 * @since 0.1.0
 * @category config
 */
export const ToolCacheConfig = Schema.Struct({
  ...KeyedCache.KeyedCacheConfig.fields,
  overrideServerTtl: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false))),
  cacheScope: Schema.optionalKey(Schema.Literals(["public", "private"])),
  maxTimeToLive: Schema.DurationFromMillis.pipe(Schema.withDecodingDefaultKey(Effect.succeed(86_400_000))),
  zeroTtl: Schema.Literals(["until-changed", "respect"]).pipe(Schema.withDecodingDefaultKey(Effect.succeed("until-changed")))
})

/**
 * The decoded config type.
 *
 * @since 0.1.0
 * @category config
 */
export type ToolCacheConfig = typeof ToolCacheConfig.Type

/**
 * Every default applied.
 *
 * @since 0.1.0
 * @category config
 */
export const defaultConfig: ToolCacheConfig = Schema.decodeUnknownSync(ToolCacheConfig)({})

/**
 * What {@link ToolCache.make} and {@link ToolCache.layer} accept: any config field (durations as
 * `Duration.Input`, e.g. `"10 minutes"`), a custom eviction policy, and the metric name.
 *
 * @since 0.1.0
 * @category config
 */
export interface ToolCacheOptions {
  /** The `cache` metric attribute. Default `"tools"`. */
  readonly name?: string | undefined
  readonly capacity?: number | undefined
  readonly policy?: EvictionPolicy.EvictionPolicyName | EvictionPolicy.EvictionPolicyFactory | undefined
  readonly timeToLive?: Duration.Input | undefined
  readonly staleWhileRevalidate?: Duration.Input | undefined
  readonly sweepInterval?: Duration.Input | undefined
  readonly overrideServerTtl?: boolean | undefined
  readonly cacheScope?: "public" | "private" | undefined
  readonly maxTimeToLive?: Duration.Input | undefined
  readonly zeroTtl?: "until-changed" | "respect" | undefined
}

// -----------------------------------------------------------------------------
// The service
// -----------------------------------------------------------------------------

/**
 * Per-call options. `credential` identifies the authorization context (e.g. the auth subject); results
 * a server marks `private` are cached per credential and never served to another one.
 *
 * @since 0.1.0
 * @category models
 */
export interface ToolCacheGetOptions {
  readonly credential?: string | undefined
}

/**
 * What {@link ToolCacheShape.list} and {@link ToolCacheShape.watch} need from a connection (McpClient's
 * `McpConnection` fits).
 *
 * @since 0.1.0
 * @category models
 */
export interface ToolSource<E = unknown> {
  readonly name: string
  readonly listTools: () => Effect.Effect<ListToolsResult, E>
  readonly toolListChanged: Stream.Stream<void>
}

/**
 * The tool cache.
 *
 * @since 0.1.0
 * @category models
 */
export interface ToolCacheShape {
  /**
   * The tool list of `server`: cached if fresh, else `fetch` runs (once, shared with every concurrent
   * caller for the same server and credential) and its success is cached per the hints and config.
   * The result is deep-frozen.
   */
  readonly get: <E, R>(
    server: string,
    fetch: Effect.Effect<ListToolsResult, E, R>,
    options?: ToolCacheGetOptions
  ) => Effect.Effect<ListToolsResult, E, R>
  /** `get(connection.name, connection.listTools())`. */
  readonly list: <E>(connection: ToolSource<E>, options?: ToolCacheGetOptions) => Effect.Effect<ListToolsResult, E>
  /** The seed's `Get(server)`: the cached list if fresh, never fetches. Counts a hit or a miss. */
  readonly getOption: (server: string, options?: ToolCacheGetOptions) => Effect.Effect<Option.Option<ListToolsResult>>
  /**
   * The hot path's synchronous read (`McpClientManager.callTool`): the single-tenant (no credential) list
   * of `server` if fresh at `now` (`Clock` ms), counted as a hit; `undefined` means take `get`. Optional:
   * a cache without it always takes `get`.
   */
  readonly getUnsafe?: ((server: string, now: number) => ListToolsResult | undefined) | undefined
  /**
   * The seed's `Set(server, tools)`. The result's own hints apply (a `private` one needs a `credential`
   * to be kept apart); `timeToLive` overrides them.
   */
  readonly set: (
    server: string,
    result: ListToolsResult,
    options?: ToolCacheGetOptions & { readonly timeToLive?: Duration.Input | undefined }
  ) => Effect.Effect<void>
  /** Drop every entry of `server` (all credentials) and detach its in-flight fetches. */
  readonly invalidate: (server: string) => Effect.Effect<void>
  /** Drop everything. */
  readonly invalidateAll: Effect.Effect<void>
  /** Invalidate `server` on every element of `changes`, for as long as the scope lives. */
  readonly invalidateOn: <E, R>(
    server: string,
    changes: Stream.Stream<unknown, E, R>
  ) => Effect.Effect<void, never, Scope.Scope | R>
  /** `invalidateOn(connection.name, connection.toolListChanged)`. */
  readonly watch: (connection: Pick<ToolSource, "name" | "toolListChanged">) => Effect.Effect<void, never, Scope.Scope>
  /** Hits, misses, hit rate, loads, evictions by reason, entries. */
  readonly stats: Effect.Effect<KeyedCache.CacheStats>
  /** The servers with at least one entry held. */
  readonly servers: Effect.Effect<ReadonlyArray<string>>
  /** The underlying generic cache (keys are encoded `[server, credential]`). */
  readonly cache: KeyedCache.KeyedCache<string, ListToolsResult>
}

// Keys: the shared (public) slot of a server is the server name itself, so the hot path builds no
// string. A credential's slot is "\0" + JSON [server, credential]; a server name that itself begins
// with "\0" gets "\0" + JSON [server] (a 1-element array never equals a 2-element one).
const sharedKey = (server: string): string =>
  server.charCodeAt(0) === 0 ? "\u0000" + JSON.stringify([server]) : server
const privateKey = (server: string, credential: string): string =>
  "\u0000" + JSON.stringify([server, credential])
const isCredentialKey = (key: string): boolean =>
  key.charCodeAt(0) === 0 && (JSON.parse(key.slice(1)) as Array<string>).length === 2
const serverOf = (key: string): string =>
  key.charCodeAt(0) === 0 ? (JSON.parse(key.slice(1)) as Array<string>)[0]! : key

const deepFreeze = <T>(value: T): T => {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

const toMillis = (input: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * Builds a tool cache owned by the current scope (see {@link ToolCache.make}).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: ToolCacheOptions = {}): Effect.Effect<ToolCacheShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const d = defaultConfig
    const configTtlMs = toMillis(options.timeToLive ?? d.timeToLive)
    const maxTtlMs = toMillis(options.maxTimeToLive ?? d.maxTimeToLive)
    const overrideServerTtl = options.overrideServerTtl ?? d.overrideServerTtl
    const forcedScope = options.cacheScope ?? d.cacheScope
    const respectZeroTtl = (options.zeroTtl ?? d.zeroTtl) === "respect"

    const scopeOf = (result: ListToolsResult): "public" | "private" =>
      forcedScope ?? ((result as { cacheScope?: unknown }).cacheScope === "public" ? "public" : "private")
    const ttlOf = (result: ListToolsResult): number => {
      const hint = (result as { ttlMs?: unknown }).ttlMs
      if (overrideServerTtl || typeof hint !== "number" || !Number.isFinite(hint)) return configTtlMs
      if (hint <= 0) return respectZeroTtl ? 0 : configTtlMs
      return Math.min(hint, maxTtlMs)
    }

    const cache = yield* KeyedCache.make<string, ListToolsResult>({
      name: options.name ?? "tools",
      capacity: options.capacity ?? d.capacity,
      policy: options.policy ?? d.policy,
      timeToLive: ttlOf,
      staleWhileRevalidate: options.staleWhileRevalidate ?? d.staleWhileRevalidate,
      sweepInterval: options.sweepInterval ?? d.sweepInterval,
      keyAttributes: (key) => ({ server: serverOf(key) }),
      // Runs once per completed fetch, before the write: freeze the result (in place, so every waiter
      // of that fetch gets the frozen object too), and send a public result fetched under a credential
      // to the server's shared slot. Freezing here keeps the hit path free of a per-call `Effect.map`.
      storeAs: (result, key) => {
        deepFreeze(result)
        return isCredentialKey(key) && scopeOf(result) === "public" ? sharedKey(serverOf(key)) : key
      }
    })

    // The hit path reads this `Clock` (the one the cache was built with, as McpClientManager's fused step
    // does) instead of looking it up in the fiber's context on every call: one `Effect.suspend` for a hit.
    const clock = yield* Clock.Clock
    const get = <E, R>(
      server: string,
      fetch: Effect.Effect<ListToolsResult, E, R>,
      options?: ToolCacheGetOptions
    ): Effect.Effect<ListToolsResult, E, R> => {
      const credential = options?.credential
      if (credential === undefined || credential === "") {
        // Single-tenant: one slot per server, whatever the scope. A fresh entry is served at once (and
        // counted as a hit); anything else (a miss, a stale entry, a load to join) is `KeyedCache.get`'s.
        const key = sharedKey(server)
        return Effect.suspend(() => {
          const fresh = cache.getUnsafe(key, clock.currentTimeMillisUnsafe())
          return fresh !== undefined ? Effect.succeed(fresh) : cache.get(key, fetch)
        })
      }
      return Effect.flatMap(cache.has(privateKey(server, credential)), (own) => {
        if (own) return cache.get(privateKey(server, credential), fetch)
        return Effect.flatMap(peekPublic(server), (shared) => {
          if (Option.isSome(shared)) return Effect.succeed(shared.value)
          return cache.get(privateKey(server, credential), fetch)
        })
      })
    }

    /** A fresh shared entry that is public (counts a hit only when it is served). */
    const peekPublic = (server: string): Effect.Effect<Option.Option<ListToolsResult>> =>
      Effect.flatMap(cache.peek(sharedKey(server)), (held) =>
        Option.isSome(held) && scopeOf(held.value) === "public" ? cache.getOption(sharedKey(server)) : Effect.succeedNone)

    const getOption = (server: string, options?: ToolCacheGetOptions) => {
      const credential = options?.credential
      if (credential === undefined || credential === "") return cache.getOption(sharedKey(server))
      return Effect.flatMap(cache.has(privateKey(server, credential)), (own) =>
        own
          ? cache.getOption(privateKey(server, credential))
          : Effect.flatMap(
            peekPublic(server),
            (shared) => Option.isSome(shared) ? Effect.succeed(shared) : cache.getOption(privateKey(server, credential))
          ))
    }

    const set = (
      server: string,
      result: ListToolsResult,
      options?: ToolCacheGetOptions & { readonly timeToLive?: Duration.Input | undefined }
    ) => {
      const credential = options?.credential
      const frozen = deepFreeze(result)
      const key = credential === undefined || credential === "" || scopeOf(frozen) === "public"
        ? sharedKey(server)
        : privateKey(server, credential)
      return cache.set(key, frozen, options?.timeToLive !== undefined ? { timeToLive: options.timeToLive } : undefined)
    }

    const invalidate = (server: string) => cache.invalidateWhere((key) => serverOf(key) === server)

    const invalidateOn = <E, R>(server: string, changes: Stream.Stream<unknown, E, R>) =>
      Effect.asVoid(Effect.forkScoped(Stream.runForEach(changes, () => invalidate(server)).pipe(Effect.ignore)))

    const shape: ToolCacheShape = {
      get,
      list: (connection, options) => get(connection.name, Effect.suspend(() => connection.listTools()), options),
      getOption,
      getUnsafe: (server, now) => cache.getUnsafe(sharedKey(server), now),
      set,
      invalidate,
      invalidateAll: cache.invalidateAll,
      invalidateOn,
      watch: (connection) => invalidateOn(connection.name, connection.toolListChanged),
      stats: cache.stats,
      servers: Effect.map(cache.keys, (keys) => Array.from(new Set(keys.map(serverOf)))),
      cache
    }
    return shape
  })

/**
 * The tool cache service: one per application, shared by every connection (and every pooled connection
 * to the same server).
 *
 * - `ToolCache.make(options)` builds one in the current scope;
 * - `ToolCache.layer(options)` provides one (its scope is the layer's).
 *
 * The seed tutorial's names map as: `NewToolCache(config)` → `ToolCache.layer(options)` /
 * `ToolCache.make(options)`; `EvictionPolicy` → `policy`; `MaxEntries` → `capacity`; `TTL` →
 * `timeToLive`; `Get`/`Set` → `getOption`/`set` (and `get`, which fetches on a miss); `GetMetrics()` →
 * `stats` (`entries`, `hitRate`, `missRate`).
 *
 * @since 0.1.0
 * @category services
 */
export class ToolCache extends Context.Service<ToolCache, ToolCacheShape>()("@keel/core/ToolCache") {
  /** Builds a tool cache owned by the current scope. */
  static readonly make = make
  /** A layer holding one tool cache. */
  static readonly layer = (options: ToolCacheOptions = {}): Layer.Layer<ToolCache> =>
    Layer.effect(ToolCache, make(options))
  /** A layer from a decoded {@link ToolCacheConfig} (e.g. read from a config file). */
  static readonly layerConfig = (config: ToolCacheConfig, name?: string): Layer.Layer<ToolCache> =>
    Layer.effect(
      ToolCache,
      make({
        name,
        capacity: config.capacity,
        policy: config.policy,
        timeToLive: config.timeToLive,
        staleWhileRevalidate: config.staleWhileRevalidate,
        sweepInterval: config.sweepInterval,
        overrideServerTtl: config.overrideServerTtl,
        cacheScope: config.cacheScope,
        maxTimeToLive: config.maxTimeToLive
      })
    )
}
