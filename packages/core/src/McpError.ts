/**
 * The typed errors of an MCP conversation. Every failure that reaches a Keel caller is one of these
 * tagged classes, so callers match with `Effect.catchTag` and never see a raw `Error` or `DOMException`.
 *
 * | tag                     | when                                                                  |
 * | ----------------------- | --------------------------------------------------------------------- |
 * | `McpConnectError`       | spawning / connecting / initializing failed (carries the stderr tail) |
 * | `McpTimeoutError`       | a request outlived its timeout (the request was cancelled)             |
 * | `McpClosedError`        | the connection closed: child died, HTTP session broke, or we closed it |
 * | `McpProtocolError`      | the server answered with a JSON-RPC error (carries the code)           |
 * | `McpToolError`          | the tool ran and returned a result with `isError: true`                |
 * | `McpMessageTooLargeError` | the server sent a message over the session's `maxMessageBytes`       |
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * Connecting to a server failed: the command is missing, the child exited before `initialize`, the URL
 * refused the connection, or the handshake failed. `stderrTail` holds the last lines the child wrote.
 *
 * @since 0.1.0
 * @category errors
 */
export class McpConnectError extends Schema.TaggedError<McpConnectError>()("McpConnectError", {
  server: Schema.String,
  message: Schema.String,
  stderrTail: Schema.String
}) {}

/**
 * A request did not complete within its timeout. The request was cancelled on the server
 * (`notifications/cancelled`).
 *
 * @since 0.1.0
 * @category errors
 */
export class McpTimeoutError extends Schema.TaggedError<McpTimeoutError>()("McpTimeoutError", {
  server: Schema.String,
  method: Schema.String,
  timeoutMs: Schema.Number,
  message: Schema.String
}) {}

/**
 * The connection is closed: the stdio child died, the HTTP server went away, or the client was closed.
 * In-flight requests fail with this at once, not after their timeout.
 *
 * @since 0.1.0
 * @category errors
 */
export class McpClosedError extends Schema.TaggedError<McpClosedError>()("McpClosedError", {
  server: Schema.String,
  method: Schema.String,
  message: Schema.String
}) {}

/**
 * The server answered a request with a JSON-RPC error. `code` is the JSON-RPC error code
 * (e.g. -32601 method not found, -32602 invalid params), or a transport-level problem mapped to
 * -32603 (internal error) when the server's answer could not be read.
 *
 * @since 0.1.0
 * @category errors
 */
export class McpProtocolError extends Schema.TaggedError<McpProtocolError>()("McpProtocolError", {
  server: Schema.String,
  method: Schema.String,
  code: Schema.Number,
  message: Schema.String,
  data: Schema.optional(Schema.Unknown)
}) {}

/**
 * The tool ran and reported failure: its result had `isError: true`. `content` is the result's content,
 * `text` its text parts joined, for messages and logs.
 *
 * @since 0.1.0
 * @category errors
 */
export class McpToolError extends Schema.TaggedError<McpToolError>()("McpToolError", {
  server: Schema.String,
  tool: Schema.String,
  text: Schema.String,
  content: Schema.Array(Schema.Unknown),
  message: Schema.String
}) {}

/**
 * Any error an MCP request can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
/**
 * The server sent a message larger than the session's limit (`maxMessageBytes` of a stdio server, the SDK's
 * 10 MiB by default). The SDK cannot read past it, so the session is closed; retrying the same request would
 * hit the same limit, so Keel never retries it. Raise `maxMessageBytes` for a server that needs more.
 *
 * @since 0.2.0
 * @category errors
 */
export class McpMessageTooLargeError extends Schema.TaggedError<McpMessageTooLargeError>()("McpMessageTooLargeError", {
  server: Schema.String,
  method: Schema.String,
  limitBytes: Schema.Number,
  message: Schema.String
}) {}

/**
 * The server needs a user to authorise this client (OAuth authorization code flow, see `McpAuth`). Send the
 * user to `authorizationUrl`; the authorization server redirects back to the configured `redirectUrl` with
 * a `code`, which `finishAuth(server, code)` redeems. Not the server's fault: it never counts against the
 * circuit breaker and is never retried.
 *
 * @since 0.3.0
 * @category errors
 */
export class AuthorizationRequiredError extends Schema.TaggedError<AuthorizationRequiredError>()("AuthorizationRequiredError", {
  server: Schema.String,
  authorizationUrl: Schema.String,
  message: Schema.String
}) {}

/**
 * Authorization failed for good (see `McpAuth`): the authorization server refused (`invalid_client`,
 * `invalid_grant`, ...), the server still answered 401/403 after one recovery, a step-up hit its limit, or
 * the token store failed. The message names the server and the OAuth error, never a token or a secret.
 * Not the server's fault: it never counts against the circuit breaker and is never retried blindly.
 *
 * @since 0.3.0
 * @category errors
 */
export class McpAuthError extends Schema.TaggedError<McpAuthError>()("McpAuthError", {
  server: Schema.String,
  message: Schema.String,
  status: Schema.optional(Schema.Number)
}) {}

/**
 * What opening a session can fail with: the server could not be started or reached
 * (`McpConnectError`), or authorization is needed or failed.
 *
 * @since 0.3.0
 * @category errors
 */
export type McpConnectFailure = McpConnectError | AuthorizationRequiredError | McpAuthError

export type McpError =
  | McpConnectError
  | McpTimeoutError
  | McpClosedError
  | McpProtocolError
  | McpToolError
  | McpMessageTooLargeError
  | AuthorizationRequiredError
  | McpAuthError

/**
 * The tags of {@link McpError}, e.g. for a circuit breaker's classifier.
 *
 * @since 0.1.0
 * @category errors
 */
export type McpErrorTag = McpError["_tag"]

/**
 * Whether a JSON-RPC error is the server refusing what the caller asked: -32602 (invalid params: the
 * arguments were refused) or -32601 (method not found: something the server does not offer). Those are
 * the caller's mistakes, and never count against the server (breaker, `lastError`). Not so a tool result
 * that breaks the tool's own `outputSchema`: it is reported with the SDK's code (-32602 for content that
 * does not conform) but marked in `data` (`McpToolCall.outputSchemaViolation`), and is the server's fault.
 *
 * @example
 * ```ts
 * import { isCallerRefusal, McpProtocolError } from "@keel/core"
 *
 * isCallerRefusal(new McpProtocolError({ server: "s", method: "tools/call", code: -32602, message: "bad a" })) // true
 * isCallerRefusal(new McpProtocolError({ server: "s", method: "tools/call", code: -32603, message: "boom" })) // false
 * ```
 *
 * @since 0.3.0
 * @category guards
 */
export const isCallerRefusal = (error: { readonly code?: unknown; readonly data?: unknown }): boolean =>
  (error.code === -32602 || error.code === -32601) &&
  (error.data as { readonly reason?: unknown } | null | undefined)?.reason !== "outputSchema"

/**
 * Whether a value is one of Keel's MCP errors.
 *
 * @since 0.1.0
 * @category guards
 */
export const isMcpError = (u: unknown): u is McpError =>
  typeof u === "object" && u !== null && "_tag" in u &&
  (u._tag === "McpConnectError" || u._tag === "McpTimeoutError" || u._tag === "McpClosedError" ||
    u._tag === "McpProtocolError" || u._tag === "McpToolError" || u._tag === "McpMessageTooLargeError" ||
    u._tag === "AuthorizationRequiredError" || u._tag === "McpAuthError")
