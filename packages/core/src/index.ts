/**
 * `@keel/core`: production-grade MCP clients for Effect. Each module is also importable on its own, e.g.
 * `import { ConnectionPool } from "@keel/core/ConnectionPool"`.
 *
 * | module              | what it is                                                                  | seed tutorial name |
 * | ------------------- | --------------------------------------------------------------------------- | ------------------ |
 * | `McpClientManager`  | one Layer: config file, pool, cache, breaker, timeouts, retry, metrics       | `client.Manager`   |
 * | `McpConfig`         | the decoded config as a service (`layerFile`, `layerConfig`)                 |                    |
 * | `ConnectionPool`    | keyed pool of MCP sessions, scoped leases                                    | `ConnectionPool`   |
 * | `SessionHooks`      | what the pool does with each new session (cache, metrics, client handlers)   |                    |
 * | `ToolCache`         | tool lists per server, pluggable eviction, list_changed aware                | `ToolCache`        |
 * | `KeyedCache`        | the generic cache under `ToolCache`                                         |                    |
 * | `EvictionPolicy`    | LRU, LFU, FIFO (+ TTL) and your own                                          | `EvictionPolicy`   |
 * | `CircuitBreaker`    | per-server breaker: Ref state, Schedule backoff, sliding windows, events     | `CircuitBreaker`   |
 * | `McpMetrics`        | semconv tool-call metrics as Effect `Metric`s                                | `PrometheusMetrics` (see `@keel/prometheus`) |
 * | `McpClient`         | one MCP session over SDK v2 as a scoped resource, typed errors               | `client.Client`    |
 * | `ServerConfig`      | stdio / Streamable HTTP / SSE config as a Schema, secrets `Redacted`          | `ClientConfig`     |
 * | `McpConfigFile`     | the `mcpServers` JSON file (Claude Desktop, VS Code) with Keel sections       |                    |
 * | `Timeouts`          | per call / tool / server timeouts, reset on progress, hard maximum           |                    |
 *
 * Modules whose names would clash (`make`, `layer`, `defaultConfig`, ...) are exported as namespaces, like
 * Effect's own: `CircuitBreaker.make(...)`, `ToolCache.ToolCache.layer(...)`, `SessionHooks.layer(...)`.
 * The everyday services, errors and types are exported by name. Internal helpers are not exported here.
 *
 * @since 0.1.0
 */

// Namespaces

/** @since 0.1.0 */
export * as CircuitBreaker from "./CircuitBreaker.ts"
/** @since 0.1.0 */
export * as ConnectionPool from "./ConnectionPool.ts"
/** @since 0.1.0 */
export * as EvictionPolicy from "./EvictionPolicy.ts"
/** @since 0.1.0 */
export * as JsonArguments from "./JsonArguments.ts"
export * as KeyedCache from "./KeyedCache.ts"
export * as McpAuth from "./McpAuth.ts"
/** @since 0.2.0 */
export * as McpConfigFile from "./McpConfigFile.ts"
/** @since 0.3.0 */
export * as McpLists from "./McpLists.ts"
/** @since 0.1.0 */
export * as McpMetrics from "./McpMetrics.ts"
/** @since 0.3.0 */
export * as McpSurface from "./McpSurface.ts"
/**
 * Types only here: the values (`toolkit`, `toolName`, `VALID_NAME`, ...) are in `@keel/core/McpToolkit`,
 * which loads `effect/ai` (about 140 ms of import time on the benchmark machine), so a program that never
 * builds a toolkit does not load it. `manager.toolkit()` loads it on first use.
 *
 * @since 0.3.0
 */
export type * as McpToolkit from "./McpToolkit.ts"
/** @since 0.3.0 */
export * as McpTracing from "./McpTracing.ts"
/** @since 0.2.0 */
export * as SessionHooks from "./SessionHooks.ts"
/** @since 0.1.0 */
export * as Timeouts from "./Timeouts.ts"
/** @since 0.1.0 */
export * as ToolCache from "./ToolCache.ts"
/** @since 0.3.0 */
export * as ToolFilter from "./ToolFilter.ts"

// Services

export { CircuitBreakerRegistry } from "./CircuitBreaker.ts"
export { McpClient } from "./McpClient.ts"
export { McpClientManager } from "./McpClientManager.ts"
export { McpConfig } from "./McpConfig.ts"
export { TokenStore } from "./McpAuth.ts"

// Errors

export { CircuitOpenError } from "./CircuitBreaker.ts"
export { McpConfigError } from "./ConfigSchema.ts"
export { PoolClosedError, PoolTimeoutError } from "./ConnectionPool.ts"
export { InvalidArgumentsError, ServerExistsError, UnknownServerError, UnknownToolError } from "./ManagerErrors.ts"
export {
  AuthorizationRequiredError,
  isCallerRefusal,
  isMcpError,
  McpAuthError,
  McpClosedError,
  McpConnectError,
  type McpConnectFailure,
  type McpError,
  type McpErrorTag,
  McpProtocolError,
  McpTimeoutError,
  McpToolError
} from "./McpError.ts"

// Models and config

export type { CallOptions, ConnectOptions, ListToolsOptions, McpConnection } from "./McpClient.ts"
export type {
  CallToolError,
  ClientHandlers,
  LayerOptions,
  ListToolsError,
  Manager,
  ManagerCallOptions,
  ManagerOptions,
  RetryOptions,
  ServerStatus
} from "./McpClientManager.ts"
export {
  decodeConfig,
  loadConfigFile,
  type McpConfigShape,
  type ServerEntry,
  type ServerPolicyInput
} from "./McpConfigFile.ts"
export {
  decodeServerConfig,
  HttpServerConfig,
  ServerConfig,
  type ServerConfigInput,
  SseServerConfig,
  StdioServerConfig
} from "./ServerConfig.ts"
