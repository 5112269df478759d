/**
 * Traces: a client span per MCP request (named and attributed as the OpenTelemetry MCP semantic
 * conventions say) through Effect's tracer, and its W3C trace context in `params._meta`, proved end to end:
 * the demo server echoes the `traceparent` it received, and it carries the client span's trace id and span
 * id. Over stdio (2026-07-28 and 2025-11-25), Streamable HTTP (2025-11-25 with an `Mcp-Session-Id`, and the
 * stateless 2026-07-28 entry) and legacy SSE.
 */
import { assert, describe, it } from "@effect/vitest"
import { demoStdio } from "@keel/demo-server"
import { Effect, Layer, Option, Tracer } from "effect"
import { McpClientManager } from "./McpClientManager.ts"
import * as McpSurface from "./McpSurface.ts"
import * as McpTracing from "./McpTracing.ts"
import { demoHttpServer } from "./testing/processes.ts"

/** An in-memory tracer: Effect's own spans, kept for the test to read. */
const memoryTracer = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}

const textOf = (r: { content: ReadonlyArray<{ type: string; text?: string }> }) => (r.content[0] as { text: string }).text

type Flags = Parameters<typeof demoStdio>[0]
const configs: ReadonlyArray<readonly [string, string, (flags: Flags) => Effect.Effect<unknown, never, import("effect").Scope.Scope>]> = [
  ["stdio (2026-07-28)", "pipe", (flags) => Effect.succeed({ type: "stdio", ...demoStdio(flags) })],
  ["stdio (2025-11-25)", "pipe", (flags) => Effect.succeed({ type: "stdio", ...demoStdio({ ...flags, protocolVersion: "2025-11-25" }) })],
  ["Streamable HTTP (2025-11-25)", "tcp", (flags) =>
    Effect.map(demoHttpServer({ ...flags, protocolVersion: "2025-11-25" }), (s) => ({ type: "http", url: s.url }))],
  ["Streamable HTTP (2026-07-28)", "tcp", (flags) => Effect.map(demoHttpServer(flags), (s) => ({ type: "http", url: s.url }))],
  ["legacy SSE", "tcp", (flags) => Effect.map(demoHttpServer(flags), (s) => ({ type: "sse", url: s.sseUrl }))]
]

for (const [label, transport, config] of configs) {
  describe(`McpTracing over ${label}`, () => {
    it.live("the client span and the traceparent the server received share the trace; off means no span", () =>
      Effect.gen(function*() {
        const json = { mcpServers: { demo: yield* config({ surface: true }) } }
        const { spans, tracer } = memoryTracer()
        yield* Effect.gen(function*() {
          const m = yield* McpClientManager
          yield* m.listTools("demo") // connect first: the spans below are the requests'

          // Tracing on (a tracer is installed): one client span per request, inside the caller's span.
          const { echoed, parent } = yield* Effect.gen(function*() {
            const parent = yield* Effect.currentSpan
            const r = yield* m.callTool("demo", "trace_context", {})
            return { echoed: JSON.parse(textOf(r)) as Record<string, string>, parent }
          }).pipe(Effect.withSpan("agent turn"), Effect.withTracer(tracer), Effect.provideService(McpTracing.TraceState, "keel=1"))
          const call = spans.find((s) => s.name === "tools/call trace_context")
          assert.isDefined(call)
          assert.strictEqual(call!.kind, "client")
          assert.strictEqual(Option.getOrUndefined(call!.parent)?.spanId, parent.spanId)
          assert.strictEqual(call!.attributes.get("mcp.method.name"), "tools/call")
          assert.strictEqual(call!.attributes.get("gen_ai.tool.name"), "trace_context")
          assert.strictEqual(call!.attributes.get("gen_ai.operation.name"), "execute_tool")
          assert.strictEqual(call!.attributes.get("network.transport"), transport)
          // A stateful HTTP session has an Mcp-Session-Id (the stateless 2026-07-28 entry has none).
          if (label === "Streamable HTTP (2025-11-25)") assert.isString(call!.attributes.get("mcp.session.id"))
          assert.strictEqual(call!.status._tag, "Ended")
          const received = McpTracing.parseTraceparent(echoed.traceparent)
          assert.isDefined(received, `server received ${JSON.stringify(echoed)}`)
          assert.strictEqual(received!.traceId, call!.traceId)
          assert.strictEqual(received!.spanId, call!.spanId)
          assert.strictEqual(received!.traceId, parent.traceId)
          assert.strictEqual(echoed.tracestate, "keel=1")

          // A failing request: error.type on its span.
          yield* Effect.flip(m.callTool("demo", "fail", { kind: "protocol", code: -32000, message: "no" })).pipe(Effect.withTracer(tracer))
          const failed = spans.find((s) => s.name === "tools/call fail")
          assert.strictEqual(failed?.attributes.get("error.type"), "-32000")
          const isError = yield* Effect.flip(m.callTool("demo", "fail", { kind: "isError" })).pipe(Effect.withTracer(tracer))
          assert.strictEqual(isError._tag, "McpToolError")
          assert.strictEqual(spans.filter((s) => s.name === "tools/call fail")[1]?.attributes.get("error.type"), "tool_error")

          // Other methods too: resources/read and prompts/get carry it to the server.
          const demo = yield* McpSurface.accessOf(m, "demo")
          yield* McpSurface.readResource(demo, "demo://readme").pipe(Effect.withTracer(tracer))
          yield* McpSurface.getPrompt(demo, "greet", { name: "Ada" }).pipe(Effect.withTracer(tracer))
          const read = spans.find((s) => s.name === "resources/read")
          assert.strictEqual(read?.attributes.get("mcp.resource.uri"), "demo://readme")
          const get = spans.find((s) => s.name === "prompts/get greet")
          assert.strictEqual(get?.attributes.get("gen_ai.prompt.name"), "greet")
          const stats = JSON.parse(textOf(yield* m.callTool("demo", "stats"))) as { traceparents: Record<string, string> }
          assert.strictEqual(McpTracing.parseTraceparent(stats.traceparents["resources/read"])?.spanId, read?.spanId)
          assert.strictEqual(McpTracing.parseTraceparent(stats.traceparents["prompts/get"])?.spanId, get?.spanId)

          // No tracer (Effect's native one) and not forced: no span, nothing injected.
          const before = spans.length
          const untraced = JSON.parse(textOf(yield* m.callTool("demo", "trace_context", {}))) as Record<string, string>
          assert.deepStrictEqual(untraced, {})
          // Forced off with a tracer installed: no span either.
          yield* m.callTool("demo", "echo", { message: "x" }).pipe(Effect.withTracer(tracer), Effect.provideService(McpTracing.Enabled, false))
          assert.strictEqual(spans.length, before)
        }).pipe(Effect.provide(Layer.fresh(McpClientManager.layerConfig(json))))
      }).pipe(Effect.scoped), 30_000)
  })
}
