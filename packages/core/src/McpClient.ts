/**
 * `McpClient`: one live MCP session as a scoped Effect resource, over the official SDK v2
 * (`@modelcontextprotocol/client` 2.4).
 *
 * - Connecting is scoped: closing the scope closes the session and ends the child process; interrupting
 *   the connect leaves no child behind.
 * - Every failure is a typed {@link McpError}; no raw `Error` or `DOMException` escapes.
 * - A crashed server fails in-flight calls at once with `McpClosedError`, over stdio (the SDK sees the
 *   pipe close) and over HTTP (Keel watches every response stream, which the SDK alone does not).
 * - Interrupting a call cancels the request on the server (`notifications/cancelled`).
 * - It speaks MCP 2026-07-28 and the older revisions (2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05), and
 *   uses the newest one the server speaks (see `protocolVersion` in {@link McpClientSettings}). On 2026-07-28
 *   the SDK adds the per-request `_meta` envelope and the `Mcp-Method`/`Mcp-Name`/`Mcp-Param-*` HTTP
 *   headers, and Keel opens `subscriptions/listen` so list changes still arrive.
 *
 * ```ts
 * import { Effect } from "effect"
 * import { McpClient } from "@keel/core"
 *
 * const program = Effect.gen(function*() {
 *   const client = yield* McpClient.connect("demo", { type: "stdio", command: "node", args: ["server.js"] })
 *   const tools = yield* client.listTools()
 *   const result = yield* client.callTool("echo", { message: "hi" }, { timeout: "2 seconds" })
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import {
  Client,
  type ClientOptions,
  ProtocolError,
  type RequestOptions,
  SdkError,
  SSEClientTransport,
  SUPPORTED_PROTOCOL_VERSIONS as SDK_SUPPORTED_PROTOCOL_VERSIONS,
  StreamableHTTPClientTransport,
  type Transport
} from "@modelcontextprotocol/client"
import type {
  CallToolResult,
  CompleteResult,
  GetPromptResult,
  Implementation,
  ListPromptsResult,
  ListResourcesResult,
  ListResourceTemplatesResult,
  ListToolsResult,
  Progress,
  PromptReference,
  ReadResourceResult,
  ResourceTemplateReference,
  ResourceUpdatedNotificationParams,
  ServerCapabilities,
  ServerNotification,
  Tool
} from "@modelcontextprotocol/client"
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { type SessionAuth, sessionAuthFor } from "./McpAuth.ts"
import {
  McpClosedError,
  McpConnectError,
  type McpConnectFailure,
  type McpError,
  McpProtocolError,
  McpMessageTooLargeError,
  McpTimeoutError,
  McpToolError
} from "./McpError.ts"
import { DEFAULT_MAX_ITEMS, DEFAULT_MAX_PAGES, ListLimitError, type ListMethod, ListKeys, walkPages } from "./McpLists.ts"
import * as McpMetrics from "./McpMetrics.ts"
import * as McpRequest from "./McpRequest.ts"
import { callToolDirect, sendsDirect } from "./McpToolCall.ts"
import * as McpTracing from "./McpTracing.ts"
import { type HttpServerConfig, revealAll, type ServerConfig, type SseServerConfig } from "./ServerConfig.ts"

// ---------------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------------

/**
 * Client settings, with defaults:
 *
 * - `requestTimeout` (default 30 s): per-request timeout unless a call gives its own. The SDK's own default
 *   is 60 s; a production caller wants to hear sooner.
 * - `connectTimeout` (default 30 s): spawn + `initialize` must finish within it.
 * - `clientName` / `clientVersion` (default `keel` / `0.1.0`): sent in `initialize`.
 * - `stderrTailBytes` (default 4096): how much of a stdio child's stderr to keep for `McpConnectError`.
 * - `protocolVersion` (default `auto`): which MCP revision to speak.
 *   - `auto`: ask the server with `server/discover` first; a 2026-07-28 server answers and the session is
 *     2026-07-28, an older server refuses (or stays silent, over stdio) and the client falls back to the
 *     `initialize` handshake, which settles on the newest older revision both speak.
 *   - `legacy`: only the `initialize` handshake (newest revision up to 2025-11-25), no probe.
 *   - a revision, e.g. `2026-07-28` or `2025-06-18`: exactly that one, or the connect fails.
 * - `stdioProbe` (default `in-place`): where `auto` sends its probe over stdio. `in-place` sends it on the
 *   session's own pipe, so `auto` costs what `legacy` costs. `sibling` is the SDK's own way: a second,
 *   short-lived child just for the probe, for servers that exit on a request before `initialize`; it
 *   costs one more spawn per connect.
 *
 * Why `auto` with the probe in place is the default (measured on this project's 2-core machine, median of
 * 4 connects, spawn + handshake): over stdio, server-everything (a 2025 server) takes about 380 ms with
 * `legacy`, about 300 ms with `auto` in place (the refused probe is one pipe round trip) and about 720 ms
 * with `auto` on a sibling (a second spawn); over HTTP `auto` on a warm 2026 server costs one POST (7–13 ms,
 * the same as `initialize`), and on a 2025 server one refused POST more. A pool opens connections often, so
 * the extra spawn is not worth paying by default; a server that cannot take the in-place probe gets
 * `stdioProbe: "sibling"` (or `protocolVersion: "legacy"`) in its own settings.
 *
 * @since 0.1.0
 * @category config
 */
export const McpClientSettings = Schema.Struct({
  requestTimeout: Schema.DurationFromMillis.pipe(Schema.withDecodingDefaultKey(Effect.succeed(30_000))),
  connectTimeout: Schema.DurationFromMillis.pipe(Schema.withDecodingDefaultKey(Effect.succeed(30_000))),
  clientName: Schema.String.pipe(Schema.withDecodingDefaultKey(Effect.succeed("keel"))),
  clientVersion: Schema.String.pipe(Schema.withDecodingDefaultKey(Effect.succeed("0.1.0"))),
  stderrTailBytes: Schema.Int.pipe(Schema.withDecodingDefaultKey(Effect.succeed(4096))),
  protocolVersion: Schema.String.pipe(Schema.withDecodingDefaultKey(Effect.succeed("auto"))),
  stdioProbe: Schema.Literals(["in-place", "sibling"]).pipe(Schema.withDecodingDefaultKey(Effect.succeed("in-place"))),
  /** The most pages one walk of `prompts/list`, `resources/list` or `resources/templates/list` follows (see `McpLists`). */
  listMaxPages: Schema.Int.pipe(Schema.withDecodingDefaultKey(Effect.succeed(DEFAULT_MAX_PAGES))),
  /** The most items one such walk returns (see `McpLists`). */
  listMaxItems: Schema.Int.pipe(Schema.withDecodingDefaultKey(Effect.succeed(DEFAULT_MAX_ITEMS)))
})

/** @since 0.1.0 @category config */
export type McpClientSettings = typeof McpClientSettings.Type

/** The default {@link McpClientSettings}. @since 0.1.0 @category config */
export const defaultSettings: McpClientSettings = Schema.decodeUnknownSync(McpClientSettings)({})

/**
 * Options for {@link McpClient.connect}: settings, plus SDK hooks that are not data.
 *
 * - `sdkOptions`: passed to the SDK `Client` (capabilities, `responseCacheStore`, `cachePartition`, ...).
 * - `setup`: called with the SDK `Client` before connecting, e.g. to register `elicitation/create`.
 * - `transport`: an SDK transport to use instead of the one the config describes.
 *
 * @since 0.1.0
 * @category config
 */
export interface ConnectOptions {
  readonly settings?: Partial<McpClientSettings> | undefined
  readonly sdkOptions?: ClientOptions | undefined
  readonly setup?: ((client: Client) => void) | undefined
  /**
   * An SDK transport to use instead of the one `config` describes (e.g. `InMemoryTransport` in tests, or a
   * transport of your own). `config` still names the session's kind for metrics.
   */
  readonly transport?: Transport | undefined
  /**
   * The server's shared auth state (OAuth, client credentials, ...; see `McpAuth`), for HTTP and SSE
   * servers. Default: the state `McpAuth` keeps for this server when its config has an `auth` section,
   * none otherwise.
   */
  readonly auth?: SessionAuth | undefined
}

/**
 * Per-call options.
 *
 * - `timeout`: overrides `requestTimeout` for this call.
 * - `onProgress` + `resetTimeoutOnProgress`: each progress notification restarts the timeout...
 * - `maxTotalTimeout`: ...up to this hard maximum.
 *
 * @since 0.1.0
 * @category models
 */
export interface CallOptions {
  readonly timeout?: Duration.Input | undefined
  /**
   * `callTool` only: the tool's definition (e.g. from `ToolCache`), for the 2026-07-28 `Mcp-Param-*` headers
   * and output-schema validation. Without it the connection uses the definition from its own last
   * `listTools`, if any.
   */
  readonly tool?: Tool | undefined
  readonly onProgress?: ((progress: Progress) => void) | undefined
  readonly resetTimeoutOnProgress?: boolean | undefined
  readonly maxTotalTimeout?: Duration.Input | undefined
}

/**
 * `listTools` options: `cacheMode` is the SDK's response cache mode. Keel's default is `bypass` (a live
 * `tools/list`); caching belongs to `ToolCache`, which can also be plugged in as the SDK's store.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListToolsOptions extends CallOptions {
  readonly cacheMode?: "use" | "refresh" | "bypass" | undefined
}

// ---------------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------------

/**
 * A connected MCP session.
 *
 * @since 0.1.0
 * @category models
 */
export interface McpConnection {
  /** The server's name in Keel (a config key), used in errors and metrics. */
  readonly name: string
  readonly config: ServerConfig
  /** The stdio child's pid; `undefined` over HTTP. */
  readonly pid: number | undefined
  readonly serverInfo: Implementation
  readonly capabilities: ServerCapabilities
  readonly instructions: string | undefined
  /** The negotiated MCP revision, e.g. `2026-07-28` or `2025-11-25`. */
  readonly protocolVersion: string | undefined
  /**
   * `modern` when the session speaks 2026-07-28 or later (negotiated with `server/discover`; every request
   * carries its `_meta` envelope), `legacy` for the `initialize` handshake of 2025-11-25 and earlier.
   */
  readonly protocolEra: "modern" | "legacy"
  /** The SDK client underneath, for what Keel does not wrap. */
  readonly sdk: Client
  /** Every page of `tools/list`, aggregated (the SDK walks the cursors). */
  readonly listTools: (options?: ListToolsOptions) => Effect.Effect<ListToolsResult, McpError>
  /**
   * Calls a tool. A result with `isError: true` fails with `McpToolError`; use
   * {@link McpConnection.callToolResult} to get such results as values.
   */
  readonly callTool: (
    name: string,
    args?: Record<string, unknown>,
    options?: CallOptions
  ) => Effect.Effect<CallToolResult, McpError>
  /**
   * The hot path's send (`McpClientManager`'s fused step): `callTool(tool.name, args, { timeout, tool })`
   * as one `Effect.callback`, with the same outcomes. `tool` is a definition from this session's tool list.
   * `undefined` when the call needs `callTool` instead: the session has closed, a tracing span is due (read
   * from `context`), the tool has `x-mcp-header` arguments to mirror, its `outputSchema` does not compile,
   * or the session brings its own validator. Optional: without it, callers use `callTool`.
   */
  readonly callToolFused?:
    | ((tool: Tool, args: Record<string, unknown>, timeoutMs: number, context: Context.Context<never>) =>
      Effect.Effect<CallToolResult, McpError> | undefined)
    | undefined
  /** Calls a tool and returns its result whether or not `isError` is set. */
  readonly callToolResult: (
    name: string,
    args?: Record<string, unknown>,
    options?: CallOptions
  ) => Effect.Effect<CallToolResult, Exclude<McpError, McpToolError>>
  /** A liveness round trip: `ping`, or `server/discover` on 2026-07-28 (which removed `ping`). */
  readonly ping: (options?: CallOptions) => Effect.Effect<void, McpError>
  /** Server notifications (list changes, logging, progress, ...), from subscription on. */
  readonly notifications: Stream.Stream<ServerNotification>
  /** One element per `notifications/tools/list_changed`. */
  readonly toolListChanged: Stream.Stream<void>
  /**
   * Every page of `resources/list`, aggregated (Keel walks the cursors, up to `listMaxPages` /
   * `listMaxItems`, else {@link ListLimitError}). Empty when the server has no `resources` capability.
   */
  readonly listResources: (options?: CallOptions) => Effect.Effect<ListResourcesResult, McpError | ListLimitError>
  /** Every page of `resources/templates/list`, aggregated (as {@link McpConnection.listResources}). */
  readonly listResourceTemplates: (
    options?: CallOptions
  ) => Effect.Effect<ListResourceTemplatesResult, McpError | ListLimitError>
  /** `resources/read` of one URI. */
  readonly readResource: (uri: string, options?: CallOptions) => Effect.Effect<ReadResourceResult, McpError>
  /**
   * Subscribes to `notifications/resources/updated` of one URI for the life of the scope: `resources/subscribe`
   * (or, on 2026-07-28, a `subscriptions/listen` stream with `resourceSubscriptions`) now, the unsubscribe
   * (or the stream's close) when the scope closes. The returned stream has the updates from the subscription
   * on, and ends when the scope or the session closes.
   */
  readonly subscribeResource: (
    uri: string,
    options?: CallOptions
  ) => Effect.Effect<Stream.Stream<ResourceUpdatedNotificationParams>, McpError, Scope.Scope>
  /** Every page of `prompts/list`, aggregated (as {@link McpConnection.listResources}). */
  readonly listPrompts: (options?: CallOptions) => Effect.Effect<ListPromptsResult, McpError | ListLimitError>
  /** `prompts/get` (the arguments are strings, as the protocol says). */
  readonly getPrompt: (
    name: string,
    args?: Record<string, string>,
    options?: CallOptions
  ) => Effect.Effect<GetPromptResult, McpError>
  /** `completion/complete` for an argument of a prompt or a resource template. */
  readonly complete: (
    ref: PromptReference | ResourceTemplateReference,
    argument: { readonly name: string; readonly value: string },
    context?: Record<string, string>,
    options?: CallOptions
  ) => Effect.Effect<CompleteResult, McpError>
  /** One element per `notifications/{tools,prompts,resources}/list_changed`: which list changed. */
  readonly listChanged: Stream.Stream<"tools" | "prompts" | "resources">
  /** Whether the session is still open (cheap; safe on hot paths). */
  readonly isOpen: () => boolean
  /** Completes when the session closes, with the reason. */
  readonly closed: Effect.Effect<string>
}

/**
 * The `McpClient` service: one connected session. Build one with {@link McpClient.connect} (scoped) or
 * {@link McpClient.layer}.
 *
 * @since 0.1.0
 * @category services
 */
export class McpClient extends Context.Service<McpClient, McpConnection>()("@keel/core/McpClient") {
  /**
   * Connects to a server; the session lives as long as the scope.
   */
  static readonly connect = (
    name: string,
    config: ServerConfig,
    options?: ConnectOptions
  ): Effect.Effect<McpConnection, McpConnectFailure, Scope.Scope> => make(name, config, options)

  /** Same as {@link McpClient.connect}: the conventional name. */
  static readonly make = McpClient.connect

  /** A layer holding one connected session. */
  static readonly layer = (
    name: string,
    config: ServerConfig,
    options?: ConnectOptions
  ): Layer.Layer<McpClient, McpConnectFailure> => Layer.effect(McpClient, make(name, config, options))
}

// ---------------------------------------------------------------------------------------------------------
// Error mapping
// ---------------------------------------------------------------------------------------------------------

const CLOSED_CODES = new Set(["CONNECTION_CLOSED", "NOT_CONNECTED", "SEND_FAILED", "ALREADY_CONNECTED"])

const errorText = (e: unknown): string => {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause
    return cause instanceof Error && cause.message !== e.message ? `${e.message}: ${cause.message}` : e.message
  }
  return String(e)
}

/** Whether an error thrown by `fetch` or a response stream means the server is gone. */
const isNetworkFailure = (e: unknown): boolean => {
  if (!(e instanceof Error) || e.name === "AbortError") return false
  const text = errorText(e)
  return /fetch failed|terminated|ECONNREFUSED|ECONNRESET|EPIPE|socket|other side closed|UND_ERR/i.test(text)
}

const mapRequestError = (
  server: string,
  method: string,
  timeoutMs: number,
  closedReason: () => string | undefined,
  e: unknown
): Exclude<McpError, McpToolError | McpConnectError> => {
  if (e instanceof McpClosedError) return e
  if (e instanceof SdkError) {
    if (e.code === "REQUEST_TIMEOUT") {
      // The SDK reports a closed connection that races the timer as a timeout; trust the close.
      const reason = closedReason()
      if (reason !== undefined) return new McpClosedError({ server, method, message: reason })
      return new McpTimeoutError({ server, method, timeoutMs, message: `${method} timed out after ${timeoutMs} ms` })
    }
    if (CLOSED_CODES.has(e.code)) {
      return new McpClosedError({ server, method, message: closedReason() ?? errorText(e) })
    }
    const status = (e.data as { status?: unknown } | undefined)?.status
    if (status === 404) return new McpClosedError({ server, method, message: `HTTP session gone: ${errorText(e)}` })
    return new McpProtocolError({ server, method, code: -32603, message: errorText(e), data: { sdkCode: e.code } })
  }
  if (e instanceof ProtocolError) {
    return new McpProtocolError({ server, method, code: e.code, message: e.message, data: e.data })
  }
  const reason = closedReason()
  if (reason !== undefined || isNetworkFailure(e)) {
    return new McpClosedError({ server, method, message: reason ?? errorText(e) })
  }
  return new McpProtocolError({ server, method, code: -32603, message: errorText(e) })
}

const toolErrorText = (result: CallToolResult): string =>
  result.content
    .map((c) => (c.type === "text" ? c.text : `[${c.type}]`))
    .join("\n")

/** A tool's own error result (`isError: true`) as the failure `callTool` gives. */
const toolError = (server: string, tool: string, result: CallToolResult): McpToolError =>
  new McpToolError({
    server,
    tool,
    text: toolErrorText(result),
    content: result.content,
    message: `tool ${tool} on ${server} returned an error: ${toolErrorText(result).slice(0, 200)}`
  })

// ---------------------------------------------------------------------------------------------------------
// Transports
// ---------------------------------------------------------------------------------------------------------

/**
 * A bounded tail of a child's stderr, for connect errors. The values of the server's configured secrets
 * (env values, header values) are masked as `***` when read: a child that prints its own token must not put
 * it into an error message or a log.
 */
class StderrTail {
  private text = ""
  readonly limit: number
  private readonly secrets: ReadonlyArray<string>
  constructor(limit: number, secrets: ReadonlyArray<string> = []) {
    this.limit = limit
    // Longest first, so a secret that contains another is masked whole. Very short values ("1", "on")
    // are not secrets worth masking and would garble the text.
    this.secrets = secrets.filter((v) => v.length >= 4).sort((a, b) => b.length - a.length)
  }
  push(chunk: string): void {
    this.text = (this.text + chunk).slice(-this.limit)
  }
  get value(): string {
    let out = this.text
    for (const secret of this.secrets) {
      out = out.split(secret).join("***")
      // The tail may start inside a secret: mask a cut-off end of it at the very start.
      for (let n = secret.length - 1; n >= 4; n--) {
        if (out.startsWith(secret.slice(-n))) {
          out = "***" + out.slice(n)
          break
        }
      }
    }
    return out
  }
}

/** The plain values of a server's configured secrets, only for masking them in what the server prints. */
const secretValues = (config: ServerConfig): ReadonlyArray<string> => {
  const map = config.type === "stdio" ? config.env : config.headers
  return map === undefined ? [] : Object.values(map).map((v) => Redacted.value(v))
}

interface Built {
  readonly transport: Transport
  readonly stderr: StderrTail
  readonly pid: () => number | undefined
}

/**
 * A `fetch` that gives each request its own AbortSignal (the SDK shares one, which leaks listeners under
 * load) and reports a dead server: a refused connection or a response stream cut mid-way.
 */
const watchedFetch = (onBroken: (reason: string) => void): typeof fetch => async (input, init) => {
  const shared = init?.signal ?? undefined
  const own = new AbortController()
  const onAbort = () => own.abort(shared?.reason)
  if (shared) {
    if (shared.aborted) own.abort(shared.reason)
    else shared.addEventListener("abort", onAbort, { once: true })
  }
  const done = () => shared?.removeEventListener("abort", onAbort)
  let response: Response
  try {
    response = await fetch(input, { ...init, signal: own.signal })
  } catch (e) {
    done()
    if (!own.signal.aborted && isNetworkFailure(e)) onBroken(`server unreachable: ${errorText(e)}`)
    throw e
  }
  const body = response.body
  if (body === null) {
    done()
    return response
  }
  const reader = body.getReader()
  const watched = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done: finished, value } = await reader.read()
        if (finished) {
          done()
          controller.close()
        } else {
          controller.enqueue(value)
        }
      } catch (e) {
        done()
        if (!own.signal.aborted) onBroken(`connection lost: ${errorText(e)}`)
        controller.error(e)
      }
    },
    cancel(reason) {
      done()
      return reader.cancel(reason)
    }
  })
  return new Response(watched, { status: response.status, statusText: response.statusText, headers: response.headers })
}

const httpInit = (config: HttpServerConfig | SseServerConfig): RequestInit => ({
  headers: revealAll(config.headers)
})

const buildTransport = (
  config: ServerConfig,
  tailBytes: number,
  onBroken: (reason: string) => void,
  probeInPlace: boolean,
  auth: SessionAuth | undefined
): Built => {
  const stderr = new StderrTail(tailBytes, secretValues(config))
  switch (config.type) {
    case "stdio": {
      const Stdio = probeInPlace ? InPlaceProbeStdioTransport : StdioClientTransport
      const transport = new Stdio({
        command: config.command,
        args: [...(config.args ?? [])],
        // The SDK adds its safe defaults (HOME, PATH, ...) only when `env` is absent.
        ...(config.env !== undefined ? { env: { ...safeEnv(), ...revealAll(config.env) } } : {}),
        ...(config.cwd !== undefined ? { cwd: config.cwd } : {}),
        ...(config.maxMessageBytes !== undefined ? { maxBufferSize: config.maxMessageBytes } : {}),
        stderr: "pipe"
      })
      transport.stderr?.on("data", (d: Buffer) => stderr.push(d.toString("utf8")))
      return { transport, stderr, pid: () => transport.pid ?? undefined }
    }
    case "http": {
      // With auth, the auth fetch wraps Keel's crash-detecting fetch; config headers still apply.
      const authed = auth?.transportOptions(watchedFetch(onBroken))
      const transport = new StreamableHTTPClientTransport(new URL(config.url), {
        requestInit: httpInit(config),
        fetch: authed?.fetch ?? watchedFetch(onBroken),
        ...(authed !== undefined ? { authProvider: authed.authProvider } : {})
      })
      return { transport, stderr, pid: () => undefined }
    }
    case "sse": {
      const authed = auth?.transportOptions(watchedFetch(onBroken))
      const fetch = authed?.fetch ?? watchedFetch(onBroken)
      const transport = new SSEClientTransport(new URL(config.url), {
        requestInit: httpInit(config),
        eventSourceInit: { fetch },
        fetch,
        ...(authed !== undefined ? { authProvider: authed.authProvider } : {})
      })
      return { transport, stderr, pid: () => undefined }
    }
  }
}

/**
 * Keel's stdio transport: the SDK's, unchanged. Being a subclass makes the SDK's `auto` negotiation probe
 * on this pipe instead of spawning a sibling child (see `stdioProbe`).
 */
class InPlaceProbeStdioTransport extends StdioClientTransport {}

/**
 * Whether a tool's `inputSchema` declares any `x-mcp-header` (memoised per tool object). Only then is the
 * definition handed to the SDK's `callTool` (`toolDefinition`): with it the SDK re-scans the schema and
 * compiles the output validator on every call (its own source, `Client.callTool`), while without it the SDK
 * uses its memoised validator. Measured in one in-process run (bench/manager-inprocess.bench.ts, noisy):
 * Keel's added CPU per fused call 31.9 µs before, 26.8 µs after.
 */
const declaresHeaders = (tool: Tool): boolean => {
  let known = headerDeclarations.get(tool)
  if (known === undefined) {
    known = JSON.stringify(tool.inputSchema ?? {}).includes("\"x-mcp-header\"")
    headerDeclarations.set(tool, known)
  }
  return known
}
const headerDeclarations = new WeakMap<Tool, boolean>()

/** The revisions Keel speaks, newest first (the SDK's `initialize` list plus 2026-07-28). */
export const SUPPORTED_PROTOCOL_VERSIONS: ReadonlyArray<string> = ["2026-07-28", ...SDK_SUPPORTED_PROTOCOL_VERSIONS]

/** The SDK client options for a `protocolVersion` setting, or an error text for an unknown one. */
const negotiationOptions = (version: string): Partial<ClientOptions> | string => {
  if (version === "auto") return { versionNegotiation: { mode: "auto" } }
  if (version === "legacy") return { versionNegotiation: { mode: "legacy" } }
  if (!SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
    return `protocolVersion must be auto, legacy or one of ${SUPPORTED_PROTOCOL_VERSIONS.join(", ")}, got ${version}`
  }
  return version >= "2026-07-28"
    ? { versionNegotiation: { mode: { pin: version } } }
    : { versionNegotiation: { mode: "legacy" }, supportedProtocolVersions: [version] }
}

const SAFE_ENV = ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"]
const safeEnv = (): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const k of SAFE_ENV) {
    const v = process.env[k]
    if (v !== undefined && !v.startsWith("()")) out[k] = v
  }
  return out
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------------------
// make
// ---------------------------------------------------------------------------------------------------------

/** The SDK's request options for one request: its signal and timeout, and the progress options asked for. */
const requestOptions = (signal: AbortSignal, timeoutMs: number, callOptions: CallOptions | undefined): RequestOptions => {
  if (callOptions === undefined || (callOptions.onProgress === undefined && callOptions.resetTimeoutOnProgress === undefined && callOptions.maxTotalTimeout === undefined)) {
    return { signal, timeout: timeoutMs }
  }
  return {
    signal,
    timeout: timeoutMs,
    ...(callOptions.onProgress !== undefined ? { onprogress: callOptions.onProgress } : {}),
    ...(callOptions.resetTimeoutOnProgress !== undefined ? { resetTimeoutOnProgress: callOptions.resetTimeoutOnProgress } : {}),
    ...(callOptions.maxTotalTimeout !== undefined ? { maxTotalTimeout: toMillis(callOptions.maxTotalTimeout, timeoutMs) } : {})
  }
}

const toMillis = (d: Duration.Input | undefined, fallback: number): number =>
  d === undefined ? fallback : typeof d === "number" ? d : Duration.toMillis(Duration.fromInputUnsafe(d))

/** The overall connect bound fired (see the connect step in {@link make}). */
const connectTimedOut: unique symbol = Symbol("connectTimedOut")

const make = (
  name: string,
  config: ServerConfig,
  options?: ConnectOptions
): Effect.Effect<McpConnection, McpConnectFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const settings: McpClientSettings = { ...defaultSettings, ...options?.settings }
    const requestTimeoutMs = Duration.toMillis(settings.requestTimeout)
    const connectTimeoutMs = Duration.toMillis(settings.connectTimeout)
    const pubsub = yield* PubSub.unbounded<ServerNotification>()
    const closed = yield* Deferred.make<string>()
    let closedReason: string | undefined
    let tooLargeLimit: number | undefined
    let client!: Client
    const markClosed = (reason: string) => {
      if (closedReason !== undefined) return
      closedReason = reason
      Deferred.doneUnsafe(closed, Effect.succeed(reason))
      // End every notification stream: a consumer outside the session's scope must not wait forever.
      Effect.runFork(PubSub.shutdown(pubsub))
    }
    const onBroken = (reason: string) => {
      if (closedReason !== undefined) return
      markClosed(reason)
      // Closing the SDK client rejects every pending request with CONNECTION_CLOSED at once.
      client.close().catch(() => {})
    }
    const given = options?.transport
    const sessionAuth = options?.auth ?? (yield* sessionAuthFor(name, config))
    const built: Built = given !== undefined
      ? { transport: given, stderr: new StderrTail(0), pid: () => undefined }
      : buildTransport(config, settings.stderrTailBytes, onBroken, settings.stdioProbe === "in-place", sessionAuth)
    const negotiation = negotiationOptions(settings.protocolVersion)
    if (typeof negotiation === "string") {
      return yield* new McpConnectError({ server: name, message: `could not connect to ${name} (${config.type}): ${negotiation}`, stderrTail: "" })
    }

    // Step 1 (uninterruptible, instant): create the client and register its release. Step 2 (connect) stays
    // interruptible; if it is interrupted, the release below still closes the transport and the child.
    client = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const c = new Client(
          { name: settings.clientName, version: settings.clientVersion },
          { capabilities: {}, ...negotiation, ...options?.sdkOptions }
        )
        c.onclose = () => markClosed(closedReason ?? "connection closed")
        c.onerror = (error) => {
          // The stdio transport's read buffer refused a message and closes the session: keep why.
          const limit = /ReadBuffer exceeded maximum size of (\d+)/.exec(errorText(error))?.[1]
          if (limit !== undefined && closedReason === undefined) {
            tooLargeLimit = Number(limit)
            markClosed(`a message from ${name} exceeded the limit of ${limit} bytes (maxMessageBytes)`)
          }
        }
        c.fallbackNotificationHandler = async (n) => {
          PubSub.publishUnsafe(pubsub, n as ServerNotification)
        }
        c.setNotificationHandler("notifications/tools/list_changed", (n) => {
          PubSub.publishUnsafe(pubsub, n)
        })
        options?.setup?.(c)
        return c
      }),
      (c) =>
        Effect.promise(async () => {
          markClosed("closed by client")
          const pid = built.pid()
          // The SDK's stdio close waits up to 2 s for exit, then SIGTERM, then SIGKILL; bound it anyway.
          let timer: ReturnType<typeof setTimeout> | undefined
          await Promise.race([
            c.close().catch(() => {}).then(() => built.transport.close().catch(() => {})),
            new Promise((r) => {
              timer = setTimeout(r, 5_000)
            })
          ])
          clearTimeout(timer)
          if (pid !== undefined && isAlive(pid)) {
            try {
              process.kill(pid, "SIGKILL")
            } catch {
              // already gone
            }
          }
        })
    )

    // The connect is bounded three ways: the SDK's own initialize timeout; the session breaking under it (a
    // refused legacy-SSE URL never settles the SDK's `start()`, it only reaches our fetch wrapper); and an
    // overall `connectTimeout` over transport start + initialize, whatever the transport does.
    yield* Effect.tryPromise({
      try: (signal) => client.connect(built.transport, { signal, timeout: connectTimeoutMs }),
      catch: (e) => e
    }).pipe(
      Effect.raceFirst(Effect.flatMap(Deferred.await(closed), (reason) => Effect.fail(new Error(reason)))),
      Effect.timeoutOrElse({
        duration: connectTimeoutMs,
        orElse: () => Effect.fail(connectTimedOut)
      }),
      Effect.catch((e) =>
        Effect.gen(function*() {
          // Authorization needed or refused: a typed auth error, not a server failure.
          const authFailure = sessionAuth?.toError(e)
          if (authFailure !== undefined) return yield* authFailure
          // Give the child's last words on stderr a moment to arrive.
          yield* Effect.sleep(50)
          const text = e === connectTimedOut || (e instanceof SdkError && e.code === "REQUEST_TIMEOUT")
            ? `connect timed out after ${connectTimeoutMs} ms (transport start + initialize)`
            : errorText(e)
          return yield* new McpConnectError({
            server: name,
            message: `could not connect to ${name} (${config.type}): ${text}`,
            stderrTail: built.stderr.value
          })
        })
      )
    )

    const protocolVersion = client.getNegotiatedProtocolVersion()
    const protocolEra = client.getProtocolEra() ?? "legacy"
    // 2026-07-28 has no unsolicited server-to-client messages: list changes come on a `subscriptions/listen`
    // stream, and the SDK hands them to the notification handlers registered above.
    const caps = client.getServerCapabilities() ?? {}
    if (protocolEra === "modern" && (caps.tools?.listChanged || caps.prompts?.listChanged || caps.resources?.listChanged)) {
      yield* Effect.tryPromise(() =>
        client.listen({
          ...(caps.tools?.listChanged ? { toolsListChanged: true } : {}),
          ...(caps.prompts?.listChanged ? { promptsListChanged: true } : {}),
          ...(caps.resources?.listChanged ? { resourcesListChanged: true } : {})
        }, { timeout: connectTimeoutMs })
      ).pipe(
        Effect.catch((e) => Effect.logWarning(`${name}: subscriptions/listen failed, list changes will not be pushed: ${errorText(e)}`))
      )
    }
    yield* Effect.logDebug(`connected to ${name} (${config.type}): MCP ${protocolVersion ?? "unknown"} (${protocolEra})`).pipe(
      Effect.annotateLogs({ "mcp.server": name, "mcp.protocol.version": protocolVersion ?? "unknown" })
    )
    yield* Effect.annotateCurrentSpan({ "mcp.protocol.version": protocolVersion ?? "unknown" })
    /** The definitions from this session's last `listTools`, for `toolDefinition` on `callTool`. */
    let knownTools = new Map<string, Tool>()
    /** `Mcp-Param-*` headers exist only on HTTP (SEP-2243); over stdio the definition would only cost time. */
    const mirrorsHeaders = config.type !== "stdio"
    /** The SDK's own output validation is replaced by McpToolCall's unless the session brings its own validator. */
    const directCalls = options?.sdkOptions?.jsonSchemaValidator === undefined

    const closedNow = () => closedReason
    const closedError = (method: string) => new McpClosedError({ server: name, method, message: closedReason ?? "closed" })
    /** A failed request's error: an authorization failure, else the SDK's error mapped (a closed pipe over the size limit as such). */
    const requestError = (method: string, timeoutMs: number, e: unknown) => {
      const authFailure = sessionAuth?.toError(e)
      if (authFailure !== undefined) return authFailure
      const error = mapRequestError(name, method, timeoutMs, closedNow, e)
      return error._tag === "McpClosedError" && tooLargeLimit !== undefined
        ? new McpMessageTooLargeError({ server: name, method, limitBytes: tooLargeLimit, message: error.message })
        : error
    }

    const traceSession = {
      server: name,
      transport: config.type === "stdio" ? "pipe" as const : "tcp" as const,
      sessionId: (built.transport as { sessionId?: string | undefined }).sessionId,
      protocolVersion
    }
    const request = <A>(
      method: string,
      callOptions: CallOptions | undefined,
      run: (opts: RequestOptions, meta: Record<string, string> | undefined) => Promise<A>,
      target?: McpTracing.RequestTarget
    ): Effect.Effect<A, Exclude<McpError, McpToolError | McpConnectError>> => {
      const timeoutMs = toMillis(callOptions?.timeout, requestTimeoutMs)
      const mapError = (e: unknown) => requestError(method, timeoutMs, e)
      // One `Effect.callback` (its signal aborts the request when the fiber is interrupted).
      const send = (meta: Record<string, string> | undefined) =>
        Effect.callback<A, Exclude<McpError, McpToolError | McpConnectError>>((resume, signal) => {
          const failed = (e: unknown) => resume(Effect.fail(mapError(e)))
          try {
            run(requestOptions(signal, timeoutMs, callOptions), meta).then((a) => resume(Effect.succeed(a)), failed)
          } catch (e) {
            failed(e)
          }
        })
      // No tracer installed and tracing not forced (the default): two context reads, no span.
      return Effect.withFiber((fiber) => {
        if (closedReason !== undefined) return Effect.fail(mapError(closedError(method)))
        const tracing = fiber.getRef(McpTracing.Enabled)
        if (tracing === false || (tracing === "auto" && fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer)) return send(undefined)
        return tracedRequest(method, target, fiber.context, send)
      })
    }
    /** A request in its own client span, whose context travels in `params._meta`. */
    const tracedRequest = <A, E>(
      method: string,
      target: McpTracing.RequestTarget | undefined,
      context: Context.Context<never>,
      send: (meta: Record<string, string>) => Effect.Effect<A, E>
    ): Effect.Effect<A, E> => {
      traceSession.sessionId ??= (built.transport as { sessionId?: string | undefined }).sessionId
      return Effect.useSpan(
        McpTracing.spanName(method, target),
        { kind: "client", attributes: McpTracing.spanAttributes(method, target, traceSession) },
        (span) =>
          send(McpTracing.metaOf(span, context)).pipe(
            Effect.onExit((exit) =>
              Effect.sync(() => {
                if (Exit.isFailure(exit)) span.attribute("error.type", McpMetrics.errorTypeOf(exit.cause).errorType)
                else if ((exit.value as { isError?: unknown } | null)?.isError === true) span.attribute("error.type", McpMetrics.TOOL_ERROR)
              })
            )
          )
      )
    }
    /** `_meta` merged into request params. */
    const withMeta = <P extends object>(params: P, meta: Record<string, string> | undefined): P =>
      meta === undefined ? params : { ...params, _meta: { ...(params as { _meta?: object })._meta, ...meta } }

    const callToolResult = (name_: string, args?: Record<string, unknown>, callOptions?: CallOptions) =>
      request(
        "tools/call",
        callOptions,
        (opts, meta) => {
          const tool = callOptions?.tool ?? knownTools.get(name_)
          const params = withMeta({ name: name_, arguments: args ?? {} }, meta)
          if (tool === undefined) return client.callTool(params, opts) as Promise<CallToolResult>
          // 2026-07-28 over HTTP: the SDK mirrors the tool's `x-mcp-header` arguments into headers.
          if (mirrorsHeaders && declaresHeaders(tool)) {
            return client.callTool(params, { ...opts, toolDefinition: tool }) as Promise<CallToolResult>
          }
          // A known definition: `tools/call` without the SDK's per-call probe and cache lookup (McpToolCall).
          return (directCalls ? callToolDirect(client, params, tool, opts) : undefined) ??
            (client.callTool(params, opts) as Promise<CallToolResult>)
        },
        { tool: name_ }
      )

    /**
     * The hot path's send ({@link McpConnection.callToolFused}): what `callTool` does for a known tool with
     * only a timeout (`request` → `callToolResult` → the `isError` check), as one `Effect.callback`.
     */
    const callToolFused = (
      tool: Tool,
      args: Record<string, unknown>,
      timeoutMs: number,
      context: Context.Context<never>
    ): Effect.Effect<CallToolResult, McpError> | undefined => {
      if (closedReason !== undefined || !directCalls || (mirrorsHeaders && declaresHeaders(tool)) || !sendsDirect(tool)) return undefined
      const tracing = Context.get(context, McpTracing.Enabled)
      if (tracing !== false && (tracing !== "auto" || Context.get(context, Tracer.Tracer) !== Tracer.nativeTracer)) return undefined
      return Effect.callback<CallToolResult, McpError>((resume, signal) => {
        const failed = (e: unknown) => resume(Effect.fail(requestError("tools/call", timeoutMs, e)))
        try {
          callToolDirect(client, { name: tool.name, arguments: args }, tool, { signal, timeout: timeoutMs })!.then(
            (result) => resume(result.isError === true ? Effect.fail(toolError(name, tool.name, result)) : Effect.succeed(result)),
            failed
          )
        } catch (e) {
          failed(e)
        }
      })
    }

    // -----------------------------------------------------------------------------------------------------
    // Resources, prompts, completions (Keel's own page walk, capped; see McpLists)
    // -----------------------------------------------------------------------------------------------------
    const limits = { maxPages: settings.listMaxPages, maxItems: settings.listMaxItems }
    const listAll = <R>(method: Exclude<ListMethod, "tools/list">, capability: boolean, callOptions: CallOptions | undefined) => {
      const key = ListKeys[method]
      if (!capability) return Effect.succeed({ [key]: [] } as R)
      return Effect.flatMap(
        request(method, callOptions, (o, meta) =>
          walkPages(key, (cursor) =>
            McpRequest.send<{ nextCursor?: string }>(client, method, withMeta(cursor !== undefined ? { cursor } : {}, meta), o), limits)),
        (walked): Effect.Effect<R, ListLimitError> =>
          walked._tag === "Done" ? Effect.succeed(walked.result as R) : Effect.fail(
            new ListLimitError({
              server: name,
              method,
              limit: walked.limit,
              max: walked.limit === "pages" ? limits.maxPages : limits.maxItems,
              message: `${method} of ${name} has more ${walked.limit} than the cap of ${
                walked.limit === "pages" ? limits.maxPages : limits.maxItems
              } (listMax${walked.limit === "pages" ? "Pages" : "Items"})`
            })
          )
      )
    }
    const updates = (uri: string) =>
      Effect.map(PubSub.subscribe(pubsub), (sub) =>
        Stream.fromSubscription(sub).pipe(
          Stream.filter((n) => n.method === "notifications/resources/updated" && n.params.uri === uri),
          Stream.map((n) => (n as { params: ResourceUpdatedNotificationParams }).params)
        ))
    const surface = {
      listResources: (o?: CallOptions) => listAll<ListResourcesResult>("resources/list", caps.resources !== undefined, o),
      listResourceTemplates: (o?: CallOptions) =>
        listAll<ListResourceTemplatesResult>("resources/templates/list", caps.resources !== undefined, o),
      listPrompts: (o?: CallOptions) => listAll<ListPromptsResult>("prompts/list", caps.prompts !== undefined, o),
      readResource: (uri: string, o?: CallOptions) =>
        // Not the SDK's response cache (`Client.readResource`): Keel reads live.
        request("resources/read", o, (opts, meta) => McpRequest.send<ReadResourceResult>(client, "resources/read", withMeta({ uri }, meta), opts), { uri }),
      getPrompt: (prompt: string, args?: Record<string, string>, o?: CallOptions) =>
        request("prompts/get", o, (opts, meta) =>
          McpRequest.send<GetPromptResult>(
            client,
            "prompts/get",
            withMeta({ name: prompt, ...(args !== undefined ? { arguments: args } : {}) }, meta),
            opts
          ), { prompt }),
      complete: (
        ref: PromptReference | ResourceTemplateReference,
        argument: { readonly name: string; readonly value: string },
        context?: Record<string, string>,
        o?: CallOptions
      ) =>
        request("completion/complete", o, (opts, meta) =>
          McpRequest.send<CompleteResult>(
            client,
            "completion/complete",
            withMeta({
              ref,
              argument: { name: argument.name, value: argument.value },
              ...(context !== undefined ? { context: { arguments: context } } : {})
            }, meta),
            opts
          ), ref.type === "ref/prompt" ? { prompt: ref.name } : { uri: ref.uri }),
      subscribeResource: (uri: string, o?: CallOptions) =>
        Effect.gen(function*() {
          // Subscribe to the session's notifications first, so no update between the two is lost.
          const stream = yield* updates(uri)
          if (protocolEra === "modern") {
            yield* Effect.acquireRelease(
              request("subscriptions/listen", o, (opts) => client.listen({ resourceSubscriptions: [uri] }, opts), { uri }),
              (sub) => Effect.promise(() => sub.close().catch(() => {}))
            )
          } else {
            yield* Effect.acquireRelease(
              request("resources/subscribe", o, (opts, meta) => client.subscribeResource(withMeta({ uri }, meta), opts), { uri }),
              () =>
                closedReason !== undefined ? Effect.void : Effect.ignore(
                  request("resources/unsubscribe", o, (opts, meta) => client.unsubscribeResource(withMeta({ uri }, meta), opts), { uri })
                )
            )
          }
          return stream
        }),
      listChanged: Stream.fromPubSub(pubsub).pipe(
        Stream.filterMap((n) =>
          n.method === "notifications/tools/list_changed"
            ? Result.succeed("tools" as const)
            : n.method === "notifications/prompts/list_changed"
            ? Result.succeed("prompts" as const)
            : n.method === "notifications/resources/list_changed"
            ? Result.succeed("resources" as const)
            : Result.failVoid
        )
      )
    }

    const connection: McpConnection = {
      name,
      config,
      pid: built.pid(),
      serverInfo: client.getServerVersion() ?? { name: "unknown", version: "unknown" },
      capabilities: client.getServerCapabilities() ?? {},
      instructions: client.getInstructions(),
      protocolVersion,
      protocolEra,
      sdk: client,
      listTools: (opts) =>
        request("tools/list", opts, async (o, meta) => {
          const result = await client.listTools(meta === undefined ? undefined : { _meta: meta }, { ...o, cacheMode: opts?.cacheMode ?? "bypass" })
          knownTools = new Map(result.tools.map((t) => [t.name, t]))
          return result
        }),
      callToolResult,
      callTool: (tool, args, callOptions) =>
        Effect.flatMap(callToolResult(tool, args, callOptions), (result) =>
          result.isError === true ? Effect.fail(toolError(name, tool, result)) : Effect.succeed(result)),
      callToolFused,
      // 2026-07-28 removed `ping`; `server/discover` is the cheapest request every 2026 server answers.
      ping: (callOptions) =>
        protocolEra === "modern"
          ? Effect.asVoid(request("server/discover", callOptions, (o) => client.discover(o)))
          : Effect.asVoid(request("ping", callOptions, (o) => McpRequest.send(client, "ping", undefined, o))),
      notifications: Stream.fromPubSub(pubsub),
      toolListChanged: Stream.fromPubSub(pubsub).pipe(
        Stream.filter((n) => n.method === "notifications/tools/list_changed"),
        Stream.map(() => undefined)
      ),
      ...surface,
      isOpen: () => closedReason === undefined,
      closed: Deferred.await(closed)
    }
    return connection
  })
