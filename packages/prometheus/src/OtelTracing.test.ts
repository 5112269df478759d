/**
 * Keel's MCP client spans through `@effect/opentelemetry`: Effect's tracer backed by an OpenTelemetry
 * `Tracer` (here an in-memory one written against `@opentelemetry/api`, standing in for the SDK's
 * `InMemorySpanExporter`, which this workspace does not install). Installing the OTel tracer turns Keel's
 * tracing on by itself (`McpTracing.Enabled` is `auto`); the OTel span of a `tools/call` carries the MCP
 * semantic-convention name and attributes, and the demo server receives a `traceparent` with that span's
 * trace id and span id.
 */
import { assert, describe, it } from "@effect/vitest"
import * as OtelTracer from "@effect/opentelemetry/OtelTracer"
import { McpClientManager } from "@keel/core/McpClientManager"
import * as McpTracing from "@keel/core/McpTracing"
import { demoStdio } from "@keel/demo-server"
import * as Otel from "@opentelemetry/api"
import { Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"

class MemorySpan implements Otel.Span {
  readonly attributes: Record<string, unknown> = {}
  status: Otel.SpanStatus = { code: Otel.SpanStatusCode.UNSET }
  ended = false
  name: string
  readonly context: Otel.SpanContext
  readonly kind: Otel.SpanKind | undefined
  readonly parentSpanId: string | undefined
  constructor(
    name: string,
    context: Otel.SpanContext,
    kind: Otel.SpanKind | undefined,
    parentSpanId: string | undefined,
    attributes: Otel.Attributes | undefined
  ) {
    this.name = name
    this.context = context
    this.kind = kind
    this.parentSpanId = parentSpanId
    Object.assign(this.attributes, attributes)
  }
  spanContext() {
    return this.context
  }
  setAttribute(key: string, value: Otel.AttributeValue) {
    this.attributes[key] = value
    return this
  }
  setAttributes(attributes: Otel.Attributes) {
    Object.assign(this.attributes, attributes)
    return this
  }
  addEvent() {
    return this
  }
  addLink() {
    return this
  }
  addLinks() {
    return this
  }
  setStatus(status: Otel.SpanStatus) {
    this.status = status
    return this
  }
  updateName(name: string) {
    this.name = name
    return this
  }
  end() {
    this.ended = true
  }
  isRecording() {
    return !this.ended
  }
  recordException() {}
}

/** An OpenTelemetry `Tracer` that keeps every span in memory (the in-memory exporter's role). */
const memoryOtelTracer = () => {
  const spans: Array<MemorySpan> = []
  const tracer: Otel.Tracer = {
    startSpan(name, options = {}, context = Otel.context.active()) {
      const parent = options.root === true ? undefined : Otel.trace.getSpanContext(context)
      const span = new MemorySpan(
        name,
        {
          traceId: parent?.traceId ?? randomBytes(16).toString("hex"),
          spanId: randomBytes(8).toString("hex"),
          traceFlags: Otel.TraceFlags.SAMPLED
        },
        options.kind,
        parent?.spanId,
        options.attributes
      )
      spans.push(span)
      return span
    },
    startActiveSpan(): never {
      throw new Error("not used")
    }
  }
  return { spans, tracer }
}

describe("Keel spans through @effect/opentelemetry", () => {
  it.live("an OTel client span per request, and the server receives its traceparent", () => {
    const { spans, tracer } = memoryOtelTracer()
    const otel = OtelTracer.layerWithoutOtelTracer.pipe(Layer.provide(Layer.succeed(OtelTracer.OtelTracer, tracer)))
    return Effect.gen(function*() {
      const mcp = yield* McpClientManager
      const echoed = yield* Effect.withSpan(mcp.callTool("demo", "trace_context", {}), "agent turn")
      const received = McpTracing.parseTraceparent(
        (JSON.parse((echoed.content[0] as { text: string }).text) as { traceparent?: string }).traceparent
      )
      const call = spans.find((s) => s.name === "tools/call trace_context")
      const turn = spans.find((s) => s.name === "agent turn")
      assert.isDefined(call)
      assert.isDefined(turn)
      assert.strictEqual(call!.kind, Otel.SpanKind.CLIENT)
      assert.strictEqual(call!.parentSpanId, turn!.context.spanId)
      assert.strictEqual(call!.attributes["mcp.method.name"], "tools/call")
      assert.strictEqual(call!.attributes["gen_ai.tool.name"], "trace_context")
      assert.strictEqual(call!.attributes["network.transport"], "pipe")
      assert.isTrue(call!.ended)
      assert.strictEqual(received?.traceId, call!.context.traceId)
      assert.strictEqual(received?.spanId, call!.context.spanId)
      assert.strictEqual(received?.traceId, turn!.context.traceId)

      const failed = yield* Effect.flip(mcp.callTool("demo", "fail", { kind: "protocol", code: -32001, message: "no" }))
      assert.strictEqual(failed._tag, "McpProtocolError")
      const failedSpan = spans.find((s) => s.name === "tools/call fail")
      assert.strictEqual(failedSpan?.attributes["error.type"], "-32001")
      assert.strictEqual(failedSpan?.status.code, Otel.SpanStatusCode.ERROR)
    }).pipe(Effect.provide(Layer.mergeAll(
      Layer.fresh(McpClientManager.layerConfig({ mcpServers: { demo: { type: "stdio", ...demoStdio({ surface: true }) } } })),
      otel
    )))
  }, 30_000)
})
