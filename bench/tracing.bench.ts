/**
 * Tracing benchmark: what a `callTool` costs with Keel's tracing off (the default: no tracer backend
 * installed) and on (a tracer installed: one client span per request, its `traceparent` in `params._meta`),
 * in-process (the demo server over the SDK's `InMemoryTransport`, so the numbers are CPU cost, no pipe).
 *
 *   export PATH=$PWD/node_modules/.bin:$PATH && node bench/tracing.bench.ts
 *
 * 1. Sequential `McpClient.callTool("add")`, rounds alternating the contenders: tracing off by default (no
 *    tracer), forced off (`McpTracing.Enabled` false, a tracer installed), and on (an in-memory tracer that
 *    keeps nothing: Effect's `NativeSpan`s, dropped). Median and p99 per call.
 * 2. The check itself: `Effect.suspend` (what a request was wrapped in before) vs the `Effect.withFiber`
 *    that reads two references (what decides tracing now), per call, in a tight loop.
 *
 * Prints a markdown table and writes bench/RESULTS-tracing.md. Every number comes from this run.
 */
import { createDemoServer, DemoState, parseOptions } from "@keel/demo-server"
import { InMemoryTransport } from "@modelcontextprotocol/client"
import { Effect, Tracer } from "effect"
import { McpClient } from "../packages/core/src/McpClient.ts"
import * as McpTracing from "../packages/core/src/McpTracing.ts"
import { machine, quantile, writeResults } from "./report.ts"

const smoke = process.env.KEEL_BENCH_SMOKE === "1"
const ROUNDS = smoke ? 4 : 20
const PER_ROUND = smoke ? 100 : 500
const LOOP = smoke ? 100_000 : 1_000_000

let spansMade = 0
const dropping = Tracer.make({
  span(options) {
    spansMade++
    return new Tracer.NativeSpan(options)
  }
})

const state = new DemoState(parseOptions([]))
const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
await createDemoServer(state).connect(serverSide as never)

const samples = { off: [] as Array<number>, forcedOff: [] as Array<number>, on: [] as Array<number> }

const program = Effect.gen(function*() {
  const c = yield* McpClient.connect("demo", { type: "stdio", command: "in-memory" }, { transport: clientSide, settings: { protocolVersion: "legacy" } })
  const run = (into: Array<number>) =>
    Effect.gen(function*() {
      for (let i = 0; i < PER_ROUND; i++) {
        const t = performance.now()
        yield* c.callTool("add", { a: i, b: 1 })
        into.push((performance.now() - t) * 1000)
      }
    })
  // Warm every path.
  yield* run([])
  yield* run([]).pipe(Effect.withTracer(dropping))
  for (let round = 0; round < ROUNDS; round++) {
    yield* run(samples.off)
    yield* run(samples.forcedOff).pipe(Effect.withTracer(dropping), Effect.provideService(McpTracing.Enabled, false))
    yield* run(samples.on).pipe(Effect.withTracer(dropping))
  }
}).pipe(Effect.scoped)
await Effect.runPromise(program)

// 2. The check alone.
const loop = (make: () => Effect.Effect<number>) => {
  const t = performance.now()
  Effect.runSync(Effect.gen(function*() {
    for (let i = 0; i < LOOP; i++) yield* make()
  }))
  return ((performance.now() - t) * 1000) / LOOP
}
const plain = Effect.succeed(1)
const suspendUs = loop(() => Effect.suspend(() => plain))
const withFiberUs = loop(() =>
  Effect.withFiber((fiber) => {
    const t = fiber.getRef(McpTracing.Enabled)
    return t === false || (t === "auto" && fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer) ? plain : plain
  })
)
const suspendUs2 = loop(() => Effect.suspend(() => plain))

const row = (name: string, xs: ReadonlyArray<number>) =>
  `| ${name} | ${quantile(xs, 0.5).toFixed(1)} | ${quantile(xs, 0.99).toFixed(1)} |`
const offMedian = quantile(samples.off, 0.5)
const onMedian = quantile(samples.on, 0.5)
const lines = [
  "## Tracing (bench/tracing.bench.ts)",
  "",
  machine(),
  "",
  `In-process \`McpClient.callTool("add")\` (demo server over InMemoryTransport), ${ROUNDS} interleaved rounds of ${PER_ROUND} calls, µs per call:`,
  "",
  "| tracing | median µs | p99 µs |",
  "| --- | ---: | ---: |",
  row("off (default: no tracer backend)", samples.off),
  row("forced off (tracer installed, `Enabled` false)", samples.forcedOff),
  row("on (span per request + traceparent in `_meta`)", samples.on),
  "",
  `Tracing on costs ${(onMedian - offMedian).toFixed(1)} µs per call (${(((onMedian - offMedian) / offMedian) * 100).toFixed(1)}% of the off median); ${spansMade} spans were made, all in the "on" rounds and warm-up.`,
  "",
  `The tracing check alone, ${LOOP.toLocaleString("en")} iterations: \`Effect.suspend\` ${suspendUs.toFixed(3)} / ${suspendUs2.toFixed(3)} µs (before and after), \`Effect.withFiber\` + two reference reads ${withFiberUs.toFixed(3)} µs.`
]
console.log(lines.join("\n"))
writeResults("tracing", lines)
process.exit(0)
