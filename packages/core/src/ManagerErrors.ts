/**
 * The errors `McpClientManager` adds to an MCP conversation's ({@link McpError}): asking for what does not
 * exist, and arguments that fail a tool's `inputSchema`. Each lists what would have been valid.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * No server of that name is connected. `available` lists the servers that are. One condition, one class:
 * the manager and the `ConnectionPool` both fail with it (the pool's `available` lists the pool's servers).
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownServerError extends Schema.TaggedError<UnknownServerError>()("UnknownServerError", {
  server: Schema.String,
  available: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/**
 * The server has no tool of that name (after a fresh `tools/list`). `available` lists its tools (the first
 * 100).
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownToolError extends Schema.TaggedError<UnknownToolError>()("UnknownToolError", {
  server: Schema.String,
  tool: Schema.String,
  available: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/**
 * The arguments fail the tool's `inputSchema`; nothing was sent. `path` is the JSON pointer of the first
 * failing value (`/` for the arguments object itself), `message` the validator's words.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidArgumentsError extends Schema.TaggedError<InvalidArgumentsError>()("InvalidArgumentsError", {
  server: Schema.String,
  tool: Schema.String,
  path: Schema.String,
  message: Schema.String
}) {}

/**
 * A server of that name is already connected.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerExistsError extends Schema.TaggedError<ServerExistsError>()("ServerExistsError", {
  server: Schema.String,
  message: Schema.String
}) {}
