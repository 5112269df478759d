/**
 * McpMetrics: label capping (property-based), error classification, and what a record writes into the
 * Effect metric registry.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Metric } from "effect"
import * as fc from "fast-check"
import { McpClosedError, McpProtocolError, McpTimeoutError, McpToolError } from "./McpError.ts"
import * as McpMetrics from "./McpMetrics.ts"

/** Runs `self` with a fresh metric registry and a fresh recorder with `cap`. */
const isolated = <A, E>(self: Effect.Effect<A, E>, cap: Partial<McpMetrics.LabelCap> = {}) =>
  self.pipe(McpMetrics.withLabelCap(cap), Effect.provideService(Metric.MetricRegistry, new Map()))

/** The histogram series of `mcp.client.operation.duration`, as attributes + count. */
const operationSeries = Effect.map(Metric.snapshot, (snapshot) =>
  snapshot
    .filter((s) => s.id === McpMetrics.Names.operationDuration && s.type === "Histogram")
    .map((s) => ({ attributes: s.attributes ?? {}, count: (s.state as Metric.HistogramState).count })))

const counterValue = (id: string, attributes: Record<string, string>) =>
  Effect.map(Metric.snapshot, (snapshot) => {
    let total = 0
    for (const s of snapshot) {
      if (s.id !== id || s.type !== "Counter") continue
      const a = s.attributes ?? {}
      if (Object.entries(attributes).every(([k, v]) => a[k] === v)) total += Number((s.state as Metric.CounterState<number>).count)
    }
    return total
  })

const toolCall = (tool: string, errorType?: string) =>
  McpMetrics.recordOperation({ server: "s", transport: "pipe", method: "tools/call", tool, durationSeconds: 0.001, errorType })

describe("CappedLabel", () => {
  it("admits at most `capacity` distinct values and answers the overflow value for the rest (property)", () => {
    fc.assert(
      fc.property(fc.nat({ max: 20 }), fc.array(fc.string({ maxLength: 6 }), { maxLength: 200 }), (capacity, values) => {
        const cap = new McpMetrics.CappedLabel(capacity, "_other", 128)
        const labels = new Set(values.map((v) => cap.label(v)))
        const distinct = new Set(values)
        // distinct label values <= cap + 1 (the overflow value)
        assert.isAtMost(labels.size, capacity + 1)
        assert.isAtMost(cap.size, capacity)
        // the first `capacity` distinct values keep their own label, and keep it on every later call
        const firsts = [...distinct].slice(0, capacity)
        for (const v of firsts) assert.strictEqual(cap.label(v), v)
        // no value is admitted when there was room for it... and then refused
        if (distinct.size <= capacity) for (const v of distinct) assert.strictEqual(cap.label(v), v)
      })
    )
  })

  it("cuts long values to maxLength", () => {
    const cap = new McpMetrics.CappedLabel(10, "_other", 8)
    assert.strictEqual(cap.label("x".repeat(100)), "xxxxxxxx")
  })
})

describe("recording", () => {
  it.effect("distinct tool labels per server stay <= maxToolsPerServer + 1 for any sequence of calls (property)", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.nat({ max: 10 }),
          fc.array(fc.tuple(fc.constantFrom("a", "b", "c"), fc.string({ maxLength: 4 })), { maxLength: 150 }),
          async (cap, calls) => {
            const series = await Effect.runPromise(isolated(
              Effect.gen(function*() {
                for (const [server, tool] of calls) {
                  yield* McpMetrics.recordOperation({ server, transport: "tcp", method: "tools/call", tool, durationSeconds: 0.01 })
                }
                return yield* operationSeries
              }),
              { maxToolsPerServer: cap }
            ))
            const total = series.reduce((n, s) => n + s.count, 0)
            assert.strictEqual(total, calls.length)
            for (const server of ["a", "b", "c"]) {
              const tools = new Set(series.filter((s) => s.attributes["mcp.server.name"] === server).map((s) => s.attributes["gen_ai.tool.name"]))
              assert.isAtMost(tools.size, cap + 1)
              const expected = new Set(calls.filter(([s]) => s === server).map(([, t]) => t))
              assert.strictEqual(tools.size, Math.min(expected.size, cap) + (expected.size > cap ? 1 : 0))
            }
          }
        ),
        { numRuns: 60 }
      )
    ))

  it.effect("100,000 distinct tool names make at most cap + 1 series and count every call", () =>
    isolated(
      Effect.gen(function*() {
        for (let i = 0; i < 100_000; i++) yield* toolCall(`tool_${i}`)
        const series = yield* operationSeries
        assert.strictEqual(series.length, 51)
        assert.strictEqual(series.reduce((n, s) => n + s.count, 0), 100_000)
        const other = series.find((s) => s.attributes["gen_ai.tool.name"] === "_other")
        assert.strictEqual(other?.count, 100_000 - 50)
        assert.strictEqual(yield* counterValue("keel.metrics.label_overflow", { attribute: "gen_ai.tool.name" }), 100_000 - 50)
      }),
      { maxToolsPerServer: 50 }
    ))

  it.effect("writes the semantic-convention attributes, error.type only on failure", () =>
    isolated(Effect.gen(function*() {
      yield* toolCall("echo")
      yield* toolCall("echo")
      yield* toolCall("echo", "tool_error")
      yield* McpMetrics.recordOperation({ server: "s", transport: "pipe", method: "tools/list", durationSeconds: 0.2 })
      const series = yield* operationSeries
      const ok = series.find((s) => s.attributes["gen_ai.tool.name"] === "echo" && s.attributes["error.type"] === undefined)
      assert.deepStrictEqual(ok, {
        attributes: { "mcp.server.name": "s", "mcp.method.name": "tools/call", "network.transport": "pipe", "gen_ai.tool.name": "echo" },
        count: 2
      })
      const failed = series.find((s) => s.attributes["error.type"] === "tool_error")
      assert.strictEqual(failed?.count, 1)
      const list = series.find((s) => s.attributes["mcp.method.name"] === "tools/list")
      assert.isUndefined(list?.attributes["gen_ai.tool.name"])
      assert.strictEqual(yield* counterValue("keel.tool.calls", { outcome: "success" }), 2)
      assert.strictEqual(yield* counterValue("keel.tool.calls", { outcome: "tool_error" }), 1)
      // tools/list is not a tool call
      assert.strictEqual(yield* counterValue("keel.tool.calls", {}), 3)
    })))

  it.effect("caps error types too (they may carry server-chosen JSON-RPC codes)", () =>
    isolated(
      Effect.gen(function*() {
        for (let code = 0; code < 100; code++) {
          yield* McpMetrics.recordOperation({ server: "s", transport: "pipe", method: "ping", durationSeconds: 0, errorType: String(code), statusCode: code })
        }
        const types = new Set((yield* operationSeries).map((s) => s.attributes["error.type"]))
        assert.strictEqual(types.size, 5 + 1)
      }),
      { maxErrorTypes: 5 }
    ))
})

describe("track", () => {
  const tracked = <A, E>(self: Effect.Effect<A, E>) =>
    McpMetrics.track({ server: "demo", transport: "tcp", method: "tools/call", tool: "t" })(self)

  const errorTypes = Effect.map(operationSeries, (series) =>
    Object.fromEntries(series.map((s) => [s.attributes["error.type"] ?? "ok", s.count])))

  it.effect("derives error.type from the exit", () =>
    isolated(Effect.gen(function*() {
      yield* tracked(Effect.succeed({ content: [] }))
      yield* tracked(Effect.succeed({ content: [], isError: true }))
      yield* Effect.flip(tracked(Effect.fail(new McpToolError({ server: "demo", tool: "t", text: "x", content: [], message: "x" }))))
      yield* Effect.flip(tracked(Effect.fail(new McpTimeoutError({ server: "demo", method: "tools/call", timeoutMs: 1, message: "x" }))))
      yield* Effect.flip(tracked(Effect.fail(new McpClosedError({ server: "demo", method: "tools/call", message: "x" }))))
      yield* Effect.flip(tracked(Effect.fail(new McpProtocolError({ server: "demo", method: "tools/call", code: -32602, message: "x" }))))
      yield* Effect.flip(tracked(Effect.fail("plain string")))
      yield* Effect.exit(tracked(Effect.die(new Error("boom"))))
      const fiber = yield* Effect.forkChild(tracked(Effect.never))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(yield* errorTypes, {
        ok: 1,
        tool_error: 2,
        McpTimeoutError: 1,
        McpClosedError: 1,
        "-32602": 1,
        _OTHER: 2,
        cancelled: 1
      })
      const series = yield* operationSeries
      assert.strictEqual(series.find((s) => s.attributes["error.type"] === "-32602")?.attributes["rpc.response.status_code"], "-32602")
    })))

  it.live("measures the wrapped effect's duration", () =>
    isolated(Effect.gen(function*() {
      yield* tracked(Effect.sleep(60))
      const snapshot = yield* Metric.snapshot
      const h = snapshot.find((s) => s.id === McpMetrics.Names.operationDuration)!.state as Metric.HistogramState
      assert.isAtLeast(h.sum, 0.05)
      assert.isBelow(h.sum, 1)
    })))
})

describe("sessions", () => {
  it.effect("keel.server.connected is 1 while the scope is open, then 0, and the session duration is recorded", () =>
    isolated(Effect.gen(function*() {
      const connected = () =>
        Effect.map(Metric.snapshot, (s) => {
          const g = s.find((m) => m.id === McpMetrics.Names.serverConnected)
          return g === undefined ? undefined : Number((g.state as Metric.GaugeState<number>).value)
        })
      yield* Effect.scoped(Effect.gen(function*() {
        yield* McpMetrics.trackSession("demo", "pipe")
        assert.strictEqual(yield* connected(), 1)
        // A pooled server has several sessions: closing one of them leaves it connected.
        yield* Effect.scoped(McpMetrics.trackSession("demo", "pipe"))
        assert.strictEqual(yield* connected(), 1)
      }))
      assert.strictEqual(yield* connected(), 0)
      const sessions = (yield* Metric.snapshot).find((m) => m.id === McpMetrics.Names.sessionDuration)
      assert.strictEqual((sessions?.state as Metric.HistogramState).count, 2)
      yield* McpMetrics.recordToolCount("demo", 12)
      const tools = (yield* Metric.snapshot).find((m) => m.id === McpMetrics.Names.serverTools)
      assert.strictEqual(Number((tools?.state as Metric.GaugeState<number>).value), 12)
    })))
})

describe("toolNameOnDuration: false", () => {
  it.effect("keeps the histogram per server/method/error and the tool names on keel.tool.calls", () =>
    isolated(
      Effect.gen(function*() {
        for (const tool of ["a", "b", "c"]) yield* toolCall(tool)
        yield* toolCall("a", "tool_error")
        const series = yield* operationSeries
        assert.strictEqual(series.length, 2)
        for (const s of series) assert.isUndefined(s.attributes["gen_ai.tool.name"])
        assert.strictEqual(series.find((s) => s.attributes["error.type"] === undefined)?.count, 3)
        assert.strictEqual(yield* counterValue("keel.tool.calls", { "gen_ai.tool.name": "a" }), 2)
        assert.strictEqual(yield* counterValue("keel.tool.calls", { "gen_ai.tool.name": "c", outcome: "success" }), 1)
      }),
      { toolNameOnDuration: false }
    ))
})
