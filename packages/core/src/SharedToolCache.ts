/**
 * Tool-list invalidation broadcast across replicas: a `tools/list_changed` seen by one replica invalidates
 * every replica's cached list of that server, over Redis pub/sub.
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
import { Clock, Effect, Layer, Metric, Option, Scope, Stream } from "effect"
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
 * Wraps `inner` so list changes are shared through `shared` for the scope's lifetime.
 *
 * @since 0.3.0
 * @category constructors
 */
export const wrap = (inner: ToolCacheShape, shared: SharedRedisShape): Effect.Effect<ToolCacheShape, never, Scope.Scope> =>
  Effect.gen(function*() {
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
      watch: (connection) =>
        inner.invalidateOn(
          connection.name,
          Stream.tap(connection.toolListChanged, () =>
            Effect.andThen(count(connection.name, "local"), shared.publish("tools", { server: connection.name })))
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
    return Option.isSome(shared) ? yield* wrap(inner, shared.value) : inner
  })
)
