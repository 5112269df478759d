/**
 * The errors `McpClientManager` adds to an MCP conversation's ({@link McpError}): asking for what does not
 * exist, and arguments that fail a tool's `inputSchema`. Each lists what would have been valid.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

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

/**
 * The server lists a tool of that name, but its definition is invalid (for example its `inputSchema` is not
 * a JSON-Schema object), so Keel cannot validate or call it. The server's other tools stay usable; this
 * never counts against the server's breaker. `reason` says what is wrong with the definition.
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidToolError extends Schema.TaggedError<InvalidToolError>()("InvalidToolError", {
  server: Schema.String,
  tool: Schema.String,
  reason: Schema.String,
  message: Schema.String
}) {}

/** The longest name {@link displayName} shows before cutting it. */
const DISPLAY_MAX = 120

/**
 * A name that came from a server (tool, server info) or a caller, fit for a message or a log line: control
 * characters (newlines, ANSI escapes) are escaped as `\n`, `\x1b`, ..., and a name longer than 120
 * characters is cut, with its full length said (`abc…(10240 chars)`). The data fields of errors keep the
 * name as it was; only messages use this.
 *
 * @since 0.2.0
 */
export const displayName = (name: string): string => {
  // The common case: a short, printable name is returned as it is (no allocation).
  // eslint-disable-next-line no-control-regex
  if (name.length <= DISPLAY_MAX && !/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(name)) return name
  const cut = name.length > DISPLAY_MAX ? name.slice(0, DISPLAY_MAX) : name
  // eslint-disable-next-line no-control-regex
  const escaped = cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    switch (c) {
      case "\n":
        return "\\n"
      case "\r":
        return "\\r"
      case "\t":
        return "\\t"
      default:
        return c.charCodeAt(0) > 0xff
          ? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`
          : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`
    }
  })
  return name.length > DISPLAY_MAX ? `${escaped}…(${name.length} chars)` : escaped
}
