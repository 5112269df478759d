/**
 * `McpTracing`: an OpenTelemetry client span per MCP request, and W3C trace context carried to the server.
 *
 * `auto` by default: on when a tracing backend is installed (the current `Tracer` is not Effect's
 * `nativeTracer`, e.g. OpenTelemetry's through `@effect/opentelemetry`'s `OtelTracer.layer` /
 * `NodeSdk.layer`), off otherwise, so a program without a backend creates no span per call. Force it with
 * {@link McpTracing.layer} (`Enabled` true) or off with `Effect.provideService(McpTracing.Enabled, false)`.
 *
 * With tracing on, every request a session sends (`tools/call`, `tools/list`, `resources/read`,
 * `prompts/get`, `completion/complete`, ... over stdio, Streamable HTTP and legacy SSE) gets:
 *
 * - a span of kind `client` named as the OpenTelemetry MCP semantic conventions say,
 *   `{mcp.method.name} {target}` (the target is the tool or prompt name; the method name alone otherwise),
 *   with `mcp.method.name`, `gen_ai.tool.name` / `gen_ai.prompt.name` / `mcp.resource.uri`,
 *   `mcp.session.id` (when the transport has one), `mcp.protocol.version`, `network.transport` (`pipe` for
 *   stdio, `tcp` for HTTP), `gen_ai.operation.name` (`execute_tool` for `tools/call`) and, on failure,
 *   `error.type` (the same value the metrics record);
 * - the span's context injected into the request's `params._meta` as `traceparent` (and `tracestate`,
 *   `baggage` when set with {@link McpTracing.TraceState} / {@link McpTracing.Baggage}): the key names the
 *   SDK exports (`TRACEPARENT_META_KEY`, ...) but never fills itself.
 *
 * @since 0.3.0
 */
import { BAGGAGE_META_KEY, TRACEPARENT_META_KEY, TRACESTATE_META_KEY } from "@modelcontextprotocol/client"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import type * as Tracer from "effect/Tracer"

/**
 * Whether Keel opens a span per MCP request and propagates trace context: `true`, `false`, or `auto`
 * (the default: when the current `Tracer` is not Effect's `nativeTracer`, i.e. a backend is installed).
 *
 * @since 0.3.0
 * @category references
 */
export const Enabled = Context.Reference<boolean | "auto">("@keel/core/McpTracing/Enabled", { defaultValue: () => "auto" })

/**
 * A W3C `tracestate` to send with every request (vendor data), or `undefined`.
 *
 * @since 0.3.0
 * @category references
 */
export const TraceState = Context.Reference<string | undefined>("@keel/core/McpTracing/TraceState", {
  defaultValue: () => undefined
})

/**
 * A W3C `baggage` header value to send with every request, or `undefined`.
 *
 * @since 0.3.0
 * @category references
 */
export const Baggage = Context.Reference<string | undefined>("@keel/core/McpTracing/Baggage", {
  defaultValue: () => undefined
})

/**
 * Turns tracing on (optionally with a `tracestate` and `baggage` sent on every request).
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (options: { readonly traceState?: string; readonly baggage?: string } = {}): Layer.Layer<never> =>
  Layer.mergeAll(
    Layer.succeed(Enabled, true),
    Layer.succeed(TraceState, options.traceState),
    Layer.succeed(Baggage, options.baggage)
  )

/**
 * The W3C `traceparent` of a span: `00-<trace id>-<span id>-<flags>`.
 *
 * @since 0.3.0
 * @category propagation
 */
export const traceparent = (span: Pick<Tracer.AnySpan, "traceId" | "spanId" | "sampled">): string =>
  `00-${span.traceId.padStart(32, "0").slice(-32)}-${span.spanId.padStart(16, "0").slice(-16)}-${span.sampled ? "01" : "00"}`

/**
 * Parses a `traceparent`; `undefined` when it is not a valid version-00 value.
 *
 * @since 0.3.0
 * @category propagation
 */
export const parseTraceparent = (
  value: unknown
): { readonly traceId: string; readonly spanId: string; readonly sampled: boolean } | undefined => {
  if (typeof value !== "string") return undefined
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value)
  if (m === null || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined
  return { traceId: m[1]!, spanId: m[2]!, sampled: (Number.parseInt(m[3]!, 16) & 1) === 1 }
}

/**
 * The `_meta` entries that carry a span's context to the server.
 *
 * @since 0.3.0
 * @category propagation
 */
export const metaOf = (
  span: Pick<Tracer.AnySpan, "traceId" | "spanId" | "sampled">,
  context: Context.Context<never>
): Record<string, string> => {
  const meta: Record<string, string> = { [TRACEPARENT_META_KEY]: traceparent(span) }
  const state = Context.get(context, TraceState)
  if (state !== undefined) meta[TRACESTATE_META_KEY] = state
  const baggage = Context.get(context, Baggage)
  if (baggage !== undefined) meta[BAGGAGE_META_KEY] = baggage
  return meta
}

/** What a request's span is about: its target and attributes beyond the method. */
export interface RequestTarget {
  /** The tool name (`tools/call`). */
  readonly tool?: string | undefined
  /** The prompt name (`prompts/get`, and `completion/complete` on a prompt). */
  readonly prompt?: string | undefined
  /** The resource URI (`resources/read`, `resources/subscribe`, ...). */
  readonly uri?: string | undefined
}

/**
 * The span name of a request, `{mcp.method.name} {target}`.
 *
 * @since 0.3.0
 * @category spans
 */
export const spanName = (method: string, target: RequestTarget | undefined): string => {
  const t = target?.tool ?? target?.prompt
  return t !== undefined ? `${method} ${t}` : method
}

/**
 * The attributes of a request's span.
 *
 * @since 0.3.0
 * @category spans
 */
export const spanAttributes = (
  method: string,
  target: RequestTarget | undefined,
  session: {
    readonly server: string
    readonly transport: "pipe" | "tcp"
    readonly sessionId: string | undefined
    readonly protocolVersion: string | undefined
  }
): Record<string, unknown> => {
  const attributes: Record<string, unknown> = {
    "mcp.method.name": method,
    "mcp.server.name": session.server,
    "network.transport": session.transport
  }
  if (session.sessionId !== undefined) attributes["mcp.session.id"] = session.sessionId
  if (session.protocolVersion !== undefined) attributes["mcp.protocol.version"] = session.protocolVersion
  if (target?.tool !== undefined) {
    attributes["gen_ai.tool.name"] = target.tool
    attributes["gen_ai.operation.name"] = "execute_tool"
  }
  if (target?.prompt !== undefined) attributes["gen_ai.prompt.name"] = target.prompt
  if (target?.uri !== undefined) attributes["mcp.resource.uri"] = target.uri
  return attributes
}
