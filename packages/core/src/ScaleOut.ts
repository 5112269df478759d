/**
 * Keel on several replicas, sharing state through Redis: the manager's graph with a shared breaker state
 * ({@link SharedBreakers}), tool-list invalidation over pub/sub ({@link SharedToolCache}) and per-server
 * rate limits and bulkheads ({@link ServerLimits}), all over one fail-open {@link SharedRedis}.
 *
 * ```ts
 * const program = Effect.gen(function*() {
 *   const mcp = yield* McpClientManager
 *   // Within github's bulkhead and shared rate limit: RateLimitedError / BulkheadTimeoutError when over.
 *   const result = yield* mcp.callTool("github", "search", { q: "effect" }, { timeout: "5 seconds" })
 * }).pipe(Effect.provide(ScaleOut.layerFile("mcp.json")))
 * ```
 *
 * `McpConfig` is decoded from the file without the scale-out sections (its decoder rejects keys it does not
 * know, so `McpClientManager.layerFile` refuses a file with `keel.redis`: use this layer for it).
 *
 * Without a `keel.redis` section the graph is the default one (everything in-process) plus local
 * bulkheads and rate limits.
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { CallToolResult } from "@modelcontextprotocol/client"
import { CircuitBreakerRegistry } from "./CircuitBreaker.ts"
import * as ConnectionPool from "./ConnectionPool.ts"
import { type CallToolError, McpClientManager, type ManagerCallOptions } from "./McpClientManager.ts"
import { McpConfig } from "./McpConfig.ts"
import { decodeConfig } from "./McpConfigFile.ts"
import { decodeScaleOut, readConfigFile, type ScaleOutConfig, withoutScaleOut } from "./ScaleOutConfig.ts"
import { McpConfigError as ConfigError } from "./ConfigSchema.ts"
import type { McpConfigError } from "./ServerConfig.ts"
import * as SessionHooks from "./SessionHooks.ts"
import * as SharedBreakers from "./SharedBreakers.ts"
import { SharedRedis } from "./SharedRedis.ts"
import * as SharedToolCache from "./SharedToolCache.ts"
import { type BulkheadTimeoutError, type RateLimitedError, ServerLimits } from "./ServerLimits.ts"
import type { ToolCache } from "./ToolCache.ts"

/**
 * What the scale-out graph provides.
 *
 * @since 0.3.0
 */
export type Services = McpClientManager | ServerLimits | CircuitBreakerRegistry | ToolCache | ConnectionPool.ConnectionPool

/**
 * The graph over an `McpConfig` layer and the decoded scale-out sections.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerWith = (
  config: Layer.Layer<McpConfig, McpConfigError>,
  scaleOut: ScaleOutConfig
): Layer.Layer<Services | McpConfig, McpConfigError> => {
  const redis: Layer.Layer<never> | Layer.Layer<SharedRedis> = Option.match(scaleOut.redis, {
    onNone: () => Layer.empty,
    onSome: (r) => SharedRedis.layer(r)
  })
  const cache = SharedToolCache.layer
  const breakers = Layer.merge(SharedBreakers.layer, Layer.empty).pipe(Layer.provideMerge(CircuitBreakerRegistry.layer()))
  const pool = McpClientManager.layerConnectionPool().pipe(Layer.provide(SessionHooks.layer()))
  return McpClientManager.layer().pipe(
    Layer.provideMerge(Layer.mergeAll(pool, breakers, ServerLimits.layer(scaleOut.servers))),
    Layer.provideMerge(cache),
    Layer.provideMerge(redis as Layer.Layer<never>),
    Layer.provideMerge(config)
  )
}

/**
 * The whole graph from an `mcpServers` file with optional `keel.redis`, `keel.rateLimit` and
 * `keel.maxConcurrentCalls` sections.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerFile = (file: string): Layer.Layer<Services | McpConfig, McpConfigError> =>
  Layer.unwrap(Effect.flatMap(readConfigFile(file), (json) =>
    decode(json).pipe(
      Effect.mapError((e) => new ConfigError({ path: `${file}: ${e.path}`, message: e.message }))
    )))

const decode = (json: unknown) =>
  Effect.map(
    Effect.all([decodeConfig(withoutScaleOut(json)), decodeScaleOut(json)]),
    ([config, scaleOut]) => layerWith(McpConfig.layer(config), scaleOut)
  )

/**
 * The whole graph from a parsed config value.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerConfig = (json: unknown): Layer.Layer<Services | McpConfig, McpConfigError> => Layer.unwrap(decode(json))

/**
 * `McpClientManager.callTool`. With `ScaleOut`'s layers the manager finds the `ServerLimits` service and
 * applies each server's bulkhead and rate limit itself (one deadline covers the waits and the call); this
 * accessor only spells out the widened error type.
 *
 * @since 0.3.0
 * @category calls
 */
export const callTool = (
  server: string,
  tool: string,
  args?: Record<string, unknown>,
  options?: ManagerCallOptions
): Effect.Effect<CallToolResult, CallToolError | RateLimitedError | BulkheadTimeoutError, McpClientManager> =>
  Effect.flatMap(Effect.service(McpClientManager), (mcp) => mcp.callTool(server, tool, args, options))
