/**
 * How to reach one MCP server: a Schema union of the three transports. Decoding names the bad field, and
 * values that may be secrets (env values, header values) become `Redacted`, so they never reach a log,
 * an error message or a metric label.
 *
 * ```ts
 * import { decodeServerConfig } from "@keel/core"
 *
 * const github = decodeServerConfig({
 *   type: "stdio",
 *   command: "node",
 *   args: ["server.js"],
 *   env: { GITHUB_TOKEN: process.env.GITHUB_TOKEN }
 * }) // Effect<ServerConfig, McpConfigError>
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { configError, formatPath, McpConfigError } from "./ConfigSchema.ts"
import { AuthConfig } from "./McpAuth.ts"

export { configError, McpConfigError } from "./ConfigSchema.ts"

/** A map of secret strings (env values, header values), decoded from plain strings into `Redacted`. */
const Secrets = Schema.Record(Schema.String, Schema.RedactedFromValue(Schema.String))

/**
 * A server started as a child process speaking MCP on stdin/stdout.
 *
 * - `command`: the executable (prefer `node <entry>` over `npx` for start-up time)
 * - `args`: default `[]`
 * - `env`: extra environment (values `Redacted`); the child also gets the SDK's safe defaults
 *   (HOME, LOGNAME, PATH, SHELL, TERM, USER)
 * - `cwd`: working directory, default: the parent's
 * - `maxMessageBytes`: the largest message the server may send (default: the SDK's 10 MiB); a larger one
 *   fails the request with `McpMessageTooLargeError`. Raise it for servers with huge tool lists or results.
 *
 * @since 0.1.0
 * @category schemas
 */
export const StdioServerConfig = Schema.Struct({
  type: Schema.Literal("stdio"),
  command: Schema.NonEmptyString,
  args: Schema.optionalKey(Schema.Array(Schema.String)),
  env: Schema.optionalKey(Secrets),
  cwd: Schema.optionalKey(Schema.NonEmptyString),
  maxMessageBytes: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1024)))
})

/** @since 0.1.0 @category models */
export type StdioServerConfig = typeof StdioServerConfig.Type

const HttpUrl = Schema.String.check(
  Schema.makeFilter((s: string) => {
    try {
      const u = new globalThis.URL(s)
      if (u.protocol !== "http:" && u.protocol !== "https:") return "must be an http(s) URL"
      // Credentials in a URL end up in error messages and logs; headers are kept Redacted.
      if (u.username !== "" || u.password !== "") return "must not carry credentials (user:password@): send them in headers"
      return undefined
    } catch {
      return "must be an absolute URL"
    }
  })
)

/**
 * A server reached over Streamable HTTP (MCP spec 2025-03-26 and later).
 *
 * - `url`: the MCP endpoint, e.g. `http://127.0.0.1:3000/mcp`
 * - `headers`: sent on every request (values `Redacted`), e.g. `Authorization`
 * - `auth`: how to get tokens (OAuth authorization code, client credentials, cross-app access, JWT bearer;
 *   secrets `Redacted`), see `McpAuth`. One token set per server, shared by all its pooled sessions.
 *
 * @since 0.1.0
 * @category schemas
 */
export const HttpServerConfig = Schema.Struct({
  type: Schema.Literal("http"),
  url: HttpUrl,
  headers: Schema.optionalKey(Secrets),
  auth: Schema.optionalKey(AuthConfig)
})

/** @since 0.1.0 @category models */
export type HttpServerConfig = typeof HttpServerConfig.Type

/**
 * A server reached over the legacy HTTP+SSE transport (spec 2024-11-05).
 *
 * @since 0.1.0
 * @category schemas
 */
export const SseServerConfig = Schema.Struct({
  type: Schema.Literal("sse"),
  url: HttpUrl,
  headers: Schema.optionalKey(Secrets),
  auth: Schema.optionalKey(AuthConfig)
})

/** @since 0.1.0 @category models */
export type SseServerConfig = typeof SseServerConfig.Type

/**
 * Any server config; `type` picks the transport.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ServerConfig = Schema.Union([StdioServerConfig, HttpServerConfig, SseServerConfig])

/** @since 0.1.0 @category models */
export type ServerConfig = typeof ServerConfig.Type

/** The config as written in JSON, before decoding (secrets as plain strings). */
export type ServerConfigInput = typeof ServerConfig.Encoded

/**
 * Decodes an unknown value as a {@link ServerConfig}; `prefix` is prepended to the failing path.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeServerConfig = (input: unknown, prefix = ""): Effect.Effect<ServerConfig, McpConfigError> => {
  // Name the discriminator when it is the problem, instead of printing the whole union.
  if (typeof input === "object" && input !== null && !Array.isArray(input)) {
    const type = (input as { type?: unknown }).type
    if (type !== "stdio" && type !== "http" && type !== "sse") {
      return Effect.fail(new McpConfigError({
        path: formatPath(prefix, ["type"]),
        message: type === undefined ? "Missing key: expected \"stdio\", \"http\" or \"sse\"" : "Expected \"stdio\", \"http\" or \"sse\""
      }))
    }
  }
  return Schema.decodeUnknownEffect(ServerConfig)(input, { errors: "first" }).pipe(
    Effect.mapError((e) => configError(prefix, e))
  )
}

/**
 * The transport label used by metrics (`network.transport` in the OpenTelemetry MCP conventions):
 * `pipe` for stdio, `tcp` for HTTP and SSE.
 *
 * @since 0.1.0
 */
export const networkTransport = (config: ServerConfig): "pipe" | "tcp" => (config.type === "stdio" ? "pipe" : "tcp")

/** Reveals a map of secrets for handing to the transport (never for logging). */
export const revealAll = (secrets: { readonly [k: string]: Redacted.Redacted<string> } | undefined): Record<string, string> => {
  const out: Record<string, string> = {}
  if (secrets !== undefined) for (const k of Object.keys(secrets)) out[k] = Redacted.value(secrets[k]!)
  return out
}
