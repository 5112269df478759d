/**
 * `@keel/core`: production-grade MCP clients for Effect.
 *
 * | module            | what it is                                                             |
 * | ----------------- | ---------------------------------------------------------------------- |
 * | `McpClient`       | one MCP session over SDK v2 as a scoped resource, typed errors          |
 * | `ServerConfig`    | stdio / Streamable HTTP / SSE server config as a Schema, secrets Redacted |
 * | `McpError`        | the typed errors of an MCP conversation                                 |
 *
 * @since 0.1.0
 */
export * from "./McpClient.ts"
export * from "./McpError.ts"
export * from "./ServerConfig.ts"
