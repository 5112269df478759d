/**
 * Tool lists shared across replicas: a second cache tier in Redis for public lists, and invalidation
 * broadcast over Redis pub/sub, so a `tools/list_changed` seen by one replica invalidates every replica's
 * cached list of that server.
 *
 * It wraps a {@link ToolCacheShape} (the seam every session already goes through: `watch`), so the cache
 * itself and the manager are unchanged:
 *
 * - `watch(connection)`: each `tools/list_changed` invalidates the local entry (as before) and publishes
 *   `{kind: "tools", server}` on the `SharedRedis` channel;
 * - a `tools` message from another replica invalidates the local entries of that server (every
 *   credential: `private` lists are never shared, and neither is any list content; only the fact that a
 *   server's list changed);
 * - each time Redis becomes available again every local list is dropped, since invalidations published
 *   while this replica was cut off were lost; with Redis down, each replica invalidates on its own
 *   sessions' notifications and its TTL, as without `keel.redis`.
 *
 * `keel_tool_list_invalidations_total{server, origin=local|remote}` counts them.
 *
 * @since 0.3.0
 */
import type { ListToolsResult } from "@modelcontextprotocol/client"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { McpConfig } from "./McpConfig.ts"
import { SharedRedis, type SharedRedisShape } from "./SharedRedis.ts"
import { ToolCache, type ToolCacheShape } from "./ToolCache.ts"

/**
 * `keel.tool_list.invalidations`: tool-list invalidations by `server` and `origin` (`local`: a
 * notification on this replica's session; `remote`: broadcast by another replica).
 *
 * @since 0.3.0
 * @category metrics
 */
export const invalidations = Metric.counter("keel_tool_list_invalidations", {
  description: "Tool-list invalidations from list_changed, by server and origin (local session or another replica)",
  incremental: true
})

/**
 * `keel.tool_list.propagation`: seconds from a replica publishing an invalidation to another dropping its
 * entry.
 *
 * @since 0.3.0
 * @category metrics
 */
export const invalidationDelay = Metric.histogram("keel_tool_list_propagation_seconds", {
  description: "Delay from a tool-list invalidation published by one replica to another applying it (seconds)",
  boundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
})

/**
 * `keel.tool_list.shared_reads`: reads of the shared (Redis) tier on a local miss, by `server` and
 * `result` (`hit`: served from Redis, no `tools/list` sent; `miss`: fetched from the server and stored).
 *
 * @since 0.3.0
 * @category metrics
 */
export const sharedReads = Metric.counter("keel_tool_list_shared_reads", {
  description: "Reads of the shared (Redis) tool-list tier on a local miss, by server and result (hit, miss)",
  incremental: true
})

/**
 * What the shared tier must know of the cache's config to respect it.
 *
 * @since 0.3.0
 * @category models
 */
export interface SharedTierOptions {
  /** The cache's forced scope (`cacheScope`): `private` never shares, `public` always does. */
  readonly cacheScope?: "public" | "private" | undefined
  readonly timeToLive?: Duration.Input | undefined
  readonly maxTimeToLive?: Duration.Input | undefined
  readonly overrideServerTtl?: boolean | undefined
}

/**
 * Wraps `inner` so list changes are shared through `shared` for the scope's lifetime, with a second tier
 * in Redis for lists every caller may see.
 *
 * The shared tier (`<keyPrefix>tools:<server>`, a JSON list with the entry's TTL) is read on a local miss
 * and written after a fetch, for **public** lists only: `cacheScope: "public"` forced by the config, or
 * sent by the server with no forced scope. A `private` list (per credential) is never written to Redis, and
 * a list read from Redis is used only if it is public. A local `tools/list_changed` deletes the Redis
 * entry before the broadcast, so other replicas refetch from the server. Redis down: the tier is skipped.
 *
 * @since 0.3.0
 * @category constructors
 */
export const wrap = (
  inner: ToolCacheShape,
  shared: SharedRedisShape,
  options: SharedTierOptions = {}
): Effect.Effect<ToolCacheShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const toMillis = (d: Duration.Input) => Duration.toMillis(Duration.fromInputUnsafe(d))
    const configTtl = toMillis(options.timeToLive ?? "5 minutes")
    const maxTtl = toMillis(options.maxTimeToLive ?? "24 hours")
    const keyOf = (server: string) => `${shared.prefix}tools:${server}`
    const isPublic = (result: ListToolsResult): boolean =>
      options.cacheScope === "public" ||
      (options.cacheScope === undefined && (result as { cacheScope?: unknown }).cacheScope === "public")
    const ttlOf = (result: ListToolsResult): number => {
      const hint = (result as { ttlMs?: unknown }).ttlMs
      if (options.overrideServerTtl === true || typeof hint !== "number" || !Number.isFinite(hint)) return configTtl
      return Math.min(Math.max(0, hint), maxTtl)
    }
    const read = (server: string, outcome: "hit" | "miss") =>
      Metric.update(Metric.withAttributes(sharedReads, { server, result: outcome }), 1)

    const tiered = <E, R>(server: string, fetch: Effect.Effect<ListToolsResult, E, R>): Effect.Effect<ListToolsResult, E, R> => {
      if (options.cacheScope === "private") return fetch
      return Effect.flatMap(Effect.option(shared.send<string | null>("tools.read", "GET", keyOf(server))), (cached) => {
        if (Option.isSome(cached) && typeof cached.value === "string") {
          try {
            const list = JSON.parse(cached.value) as ListToolsResult
            if (isPublic(list)) return Effect.as(read(server, "hit"), list)
          } catch {
            // not a list: fetch
          }
        }
        return Effect.tap(fetch, (result) => {
          const ttl = ttlOf(result)
          if (!isPublic(result) || ttl <= 0 || !shared.isAvailable()) return Effect.void
          return Effect.andThen(
            read(server, "miss"),
            Effect.ignore(shared.send("tools.write", "SET", keyOf(server), JSON.stringify(result), "PX", String(Math.ceil(ttl))))
          )
        })
      })
    }
    const count = (server: string, origin: "local" | "remote") =>
      Metric.update(Metric.withAttributes(invalidations, { server, origin }), 1)

    yield* shared.onMessage("tools", (message) => {
      const server = message.server
      if (typeof server !== "string") return Effect.void
      return Effect.andThen(
        inner.invalidate(server),
        Effect.andThen(
          count(server, "remote"),
          Effect.flatMap(Clock.currentTimeMillis, (now) => Metric.update(invalidationDelay, Math.max(0, now - message.sentAt) / 1000))
        )
      )
    })
    let first = true
    yield* shared.onAvailable(Effect.suspend(() => {
      if (first) {
        first = false
        return Effect.void
      }
      return inner.invalidateAll
    }))

    const shape: ToolCacheShape = {
      ...inner,
      get: (server, fetch, getOptions) =>
        // A credential's (private) slot never reads or writes the shared tier.
        getOptions?.credential !== undefined ? inner.get(server, fetch, getOptions) : inner.get(server, tiered(server, fetch), getOptions),
      list: (connection, listOptions) =>
        listOptions?.credential !== undefined
          ? inner.list(connection, listOptions)
          : inner.get(connection.name, tiered(connection.name, connection.listTools()), listOptions),
      watch: (connection) =>
        inner.invalidateOn(
          connection.name,
          Stream.tap(connection.toolListChanged, () =>
            Effect.andThen(
              Effect.andThen(count(connection.name, "local"), Effect.ignore(shared.send("tools.invalidate", "DEL", keyOf(connection.name)))),
              shared.publish("tools", { server: connection.name })
            ))
        )
    }
    return shape
  })

/**
 * The `ToolCache` from the config's `cache` section (as `McpClientManager.layerToolCache`), sharing list
 * changes when a {@link SharedRedis} is in context; without one it is the plain cache.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer: Layer.Layer<ToolCache, never, McpConfig> = Layer.effect(
  ToolCache,
  Effect.gen(function*() {
    const config = yield* McpConfig
    const c = config.cache
    const inner = yield* ToolCache.make({
      capacity: c.capacity,
      policy: c.policy,
      timeToLive: c.timeToLive,
      staleWhileRevalidate: c.staleWhileRevalidate,
      sweepInterval: c.sweepInterval,
      overrideServerTtl: c.overrideServerTtl,
      cacheScope: c.cacheScope,
      maxTimeToLive: c.maxTimeToLive
    })
    const shared = yield* Effect.serviceOption(SharedRedis)
    return Option.isSome(shared)
      ? yield* wrap(inner, shared.value, {
        cacheScope: c.cacheScope,
        timeToLive: c.timeToLive,
        maxTimeToLive: c.maxTimeToLive,
        overrideServerTtl: c.overrideServerTtl
      })
      : inner
  })
)
