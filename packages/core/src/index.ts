/**
 * `@keel/core`: production-grade MCP clients for Effect. Each module is also importable on its own, e.g.
 * `import { ConnectionPool } from "@keel/core/ConnectionPool"`.
 *
 * | module              | what it is                                                                  | seed tutorial name |
 * | ------------------- | --------------------------------------------------------------------------- | ------------------ |
 * | `McpClientManager`  | one Layer: config file, pool, cache, breaker, timeouts, retry, metrics       | `client.Manager`   |
 * | `ConnectionPool`    | keyed pool of MCP sessions, scoped leases                                    | `ConnectionPool`   |
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
 * Modules whose names would clash (`make`, `defaultConfig`, ...) are exported as namespaces, like Effect's
 * own: `CircuitBreaker.make(...)`, `ToolCache.ToolCache.layer(...)`. The everyday classes and errors are
 * also exported by name.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.ts"
export * as ConnectionPool from "./ConnectionPool.ts"
export * as EvictionPolicy from "./EvictionPolicy.ts"
export * as KeyedCache from "./KeyedCache.ts"
export * as McpMetrics from "./McpMetrics.ts"
export * as ToolCache from "./ToolCache.ts"
export * as Timeouts from "./Timeouts.ts"

export { CircuitBreakerRegistry, CircuitOpenError } from "./CircuitBreaker.ts"
export { PoolClosedError, PoolTimeoutError, PoolUnknownServerError } from "./ConnectionPool.ts"
export * from "./ManagerErrors.ts"
export * from "./McpClient.ts"
export * from "./McpClientManager.ts"
export * from "./McpConfigFile.ts"
export * from "./McpError.ts"
export * from "./ServerConfig.ts"
