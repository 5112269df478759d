/**
 * Keel's own in-process cost per `callTool`: the demo server over the SDK's `InMemoryTransport`, a raw SDK
 * client vs `McpClientManager.callTool`, interleaved rounds; CPU time per call (`process.cpuUsage`, user +
 * system, of this process) beside wall-clock medians. Also the per-call cost with 11, 1,000 and 10,000
 * tools listed (the demo server's `--extra-tools`), calling the first and the last tool of the list.
 *
 *   export PATH=$PWD/node_modules/.bin:$PATH && node bench/manager-inprocess.bench.ts
 *   node --cpu-prof bench/manager-inprocess.bench.ts   (KEEL_BENCH_PROFILE=1: the manager loop only)
 *
 * Writes bench/RESULTS-manager-inprocess.md. Every number comes from this run.
 */
import { Client, InMemoryTransport } from "@modelcontextprotocol/client"
import { createDemoServer, DemoState, parseOptions } from "@keel/demo-server"
import { Effect, Layer, ManagedRuntime } from "effect"
import { CircuitBreakerRegistry } from "../packages/core/src/CircuitBreaker.ts"
import { McpClient } from "../packages/core/src/McpClient.ts"
import { McpClientManager } from "../packages/core/src/McpClientManager.ts"
import { McpConfig } from "../packages/core/src/McpConfig.ts"
import { callToolResultSchema } from "../packages/core/src/McpToolCall.ts"
import * as SessionHooks from "../packages/core/src/SessionHooks.ts"
import { Session } from "node:inspector/promises"
import { machine, quantile, writeResults } from "./report.ts"

const smoke = process.env.KEEL_BENCH_SMOKE === "1"
const profile = process.env.KEEL_BENCH_PROFILE === "1"
const ROUNDS = smoke ? 4 : 10
const PER_ROUND = smoke ? 500 : 3_000

const setup = async (extraTools: number) => {
  const demoState = new DemoState(parseOptions(["--extra-tools", String(extraTools)]))
  const linked = async () => {
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await createDemoServer(demoState).connect(serverSide as never)
    return clientSide
  }
  const raw = new Client({ name: "bench", version: "1" })
  await raw.connect(await linked())
  const pool = McpClientManager.layerConnectionPool({
    connect: (name, config, options) =>
      Effect.flatMap(Effect.promise(linked), (transport) => McpClient.connect(name, config, { ...options, transport }))
  }).pipe(Layer.provide(SessionHooks.layer()))
  const rt = ManagedRuntime.make(
    McpClientManager.layer().pipe(
      Layer.provide(Layer.mergeAll(pool, CircuitBreakerRegistry.layer())),
      Layer.provide(McpClientManager.layerToolCache),
      Layer.provide(McpConfig.layerConfig({ mcpServers: { demo: { command: "in-process" } } }))
    ) as Layer.Layer<McpClientManager, never>
  )
  return { raw, rt }
}

/**
 * A call option that takes the general path: any option but `timeout` (the fused step takes timeout-only
 * calls); `timeoutScope: "call"` is the default, so the call means the same.
 */
const GENERAL = { timeoutScope: "call" } as const

interface Sample { wall: Array<number>; cpu: number; n: number }
const newSample = (): Sample => ({ wall: [], cpu: 0, n: 0 })

const rawLoop = async (raw: Client, tool: string, args: (i: number) => Record<string, unknown>, into: Sample, n: number, viaRequest = false) => {
  const c0 = process.cpuUsage()
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    // `viaRequest`: the SDK work Keel's session does for a known tool (McpToolCall: `request` + result schema).
    await (viaRequest
      ? raw.request({ method: "tools/call", params: { name: tool, arguments: args(i) } }, callToolResultSchema)
      : raw.callTool({ name: tool, arguments: args(i) }))
    into.wall.push((performance.now() - t) * 1000)
  }
  const c = process.cpuUsage(c0)
  into.cpu += c.user + c.system
  into.n += n
}
const managerLoop = (rt: ManagedRuntime.ManagedRuntime<McpClientManager, never>, tool: string, args: (i: number) => Record<string, unknown>, into: Sample, n: number, general = false) =>
  rt.runPromise(McpClientManager.use((m) =>
    Effect.gen(function*() {
      const c0 = process.cpuUsage()
      for (let i = 0; i < n; i++) {
        const t = performance.now()
        // A call option other than `timeout` takes the general path instead of the fused step.
        yield* (general ? m.callTool("demo", tool, args(i), GENERAL) : m.callTool("demo", tool, args(i)))
        into.wall.push((performance.now() - t) * 1000)
      }
      const c = process.cpuUsage(c0)
      into.cpu += c.user + c.system
      into.n += n
    })
  ))

const add = (i: number) => ({ a: i, b: 1 })
const msg = () => ({ message: "hi" })
const us = (x: number) => `${x.toFixed(2)} µs`

// 1. add, 11 tools: raw vs manager, interleaved.
const base = await setup(0)
const warm = newSample()
await rawLoop(base.raw, "add", add, warm, 2_000)
await managerLoop(base.rt, "add", add, warm, 2_000)
if (profile) {
  const s = newSample()
  if (process.env.KEEL_BENCH_PROFILE_RAW === "1") await rawLoop(base.raw, "add", add, s, 60_000)
  else await managerLoop(base.rt, "add", add, s, 60_000, process.env.KEEL_BENCH_PROFILE_GENERAL === "1")
  console.log(`manager: ${us(s.cpu / s.n)} CPU per call, median ${us(quantile(s.wall, 0.5))}`)
  process.exit(0)
}
const raw = newSample()
const rawRequest = newSample()
const mgr = newSample()
const general = newSample()
await managerLoop(base.rt, "add", add, warm, 2_000, true)
for (let r = 0; r < ROUNDS; r++) {
  await rawLoop(base.raw, "add", add, raw, PER_ROUND)
  await rawLoop(base.raw, "add", add, rawRequest, PER_ROUND, true)
  await managerLoop(base.rt, "add", add, mgr, PER_ROUND)
  await managerLoop(base.rt, "add", add, general, PER_ROUND, true)
}
// 1c. `resources/read` the same way: the raw SDK client vs the manager (McpSurface's fused step).
const readRaw = newSample()
const readManager = newSample()
const readLoop = async (into: Sample, n: number, viaManager: boolean) => {
  if (viaManager) {
    return base.rt.runPromise(McpClientManager.use((m) =>
      Effect.gen(function*() {
        const c0 = process.cpuUsage()
        for (let i = 0; i < n; i++) {
          const t = performance.now()
          yield* m.readResource("demo", "demo://readme")
          into.wall.push((performance.now() - t) * 1000)
        }
        const c = process.cpuUsage(c0)
        into.cpu += c.user + c.system
        into.n += n
      })
    ))
  }
  const c0 = process.cpuUsage()
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await base.raw.readResource({ uri: "demo://readme" }, { cacheMode: "bypass" }) // as Keel reads: no SDK response cache
    into.wall.push((performance.now() - t) * 1000)
  }
  const c = process.cpuUsage(c0)
  into.cpu += c.user + c.system
  into.n += n
}
await readLoop(newSample(), 2_000, false)
await readLoop(newSample(), 2_000, true)
for (let r = 0; r < ROUNDS; r++) {
  await readLoop(readRaw, PER_ROUND, false)
  await readLoop(readManager, PER_ROUND, true)
}

// 1a. Memory allocated per call (client and in-process server together; the difference between paths is
// the client's): V8's sampling heap profiler, one sample per 128 bytes on average, objects collected by
// minor and major GCs included.
const ALLOC_CALLS = smoke ? 2_000 : 20_000
const allocatedPerCall = async (run: () => Promise<unknown>): Promise<number> => {
  const inspector = new Session()
  inspector.connect()
  await inspector.post("HeapProfiler.startSampling", {
    samplingInterval: 128,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true
  })
  await run()
  const { profile } = await inspector.post("HeapProfiler.stopSampling")
  inspector.disconnect()
  let total = 0
  const walk = (node: { selfSize: number; children: ReadonlyArray<unknown> }) => {
    total += node.selfSize
    for (const c of node.children) walk(c as typeof node)
  }
  walk(profile.head as never)
  return total / ALLOC_CALLS / 1024
}
const allocRows = [
  ["raw SDK `Client.callTool`", () => rawLoop(base.raw, "add", add, newSample(), ALLOC_CALLS)],
  ["raw SDK `Client.request(tools/call, schema)`", () => rawLoop(base.raw, "add", add, newSample(), ALLOC_CALLS, true)],
  ["`McpClientManager.callTool` (fused step)", () => managerLoop(base.rt, "add", add, newSample(), ALLOC_CALLS)],
  ["`McpClientManager.callTool` with a call option (the general path)", () => managerLoop(base.rt, "add", add, newSample(), ALLOC_CALLS, true)]
] as const
const allocated: Array<number> = []
for (const [, run] of allocRows) allocated.push(await allocatedPerCall(run))

// 1b. Keel's own layers without the SDK's work: the manager's session's SDK client answers at once
// (`Promise.resolve`), so what is left is the Effect bridge, McpClient's request wrapper and the manager.
const session = await base.rt.runPromise(McpClientManager.use((m) => Effect.scoped(m.pool.use("demo", (c) => Effect.succeed(c)))))
const addTool = (await base.rt.runPromise(McpClientManager.use((m) => m.listTools("demo")))).find((t) => t.name === "add")!
const answer = { content: [{ type: "text", text: "2" }] }
// Both ways Keel's session sends `tools/call`: `request` (a known tool, McpToolCall) and `callTool`.
const instant = (o?: { signal?: AbortSignal }) => {
  o?.signal?.addEventListener("abort", () => {}) // as the SDK does with a signal
  return Promise.resolve(answer)
}
;(session.sdk as unknown as { callTool: (p: unknown, o?: { signal?: AbortSignal }) => Promise<unknown> }).callTool = (_p, o) => instant(o)
;(session.sdk as unknown as { request: (r: unknown, s: unknown, o?: { signal?: AbortSignal }) => Promise<unknown> }).request = (_r, _s, o) => instant(o)
const STUB = smoke ? 2_000 : 20_000
const stubLoop = (f: (i: number) => Effect.Effect<unknown, unknown>) =>
  base.rt.runPromise(Effect.gen(function*() {
    const c0 = process.cpuUsage()
    for (let i = 0; i < STUB; i++) yield* f(i)
    const c = process.cpuUsage(c0)
    return (c.user + c.system) / STUB
  }) as Effect.Effect<number>)
const stubCases: Array<[string, (m: McpClientManager["Service"]) => (i: number) => Effect.Effect<unknown, unknown>]> = [
  ["`Effect.promise` around the SDK call", () => (i) => Effect.promise(() => session.sdk.callTool({ name: "add", arguments: { a: i, b: 1 } }))],
  ["`McpConnection.callTool` (McpClient's request wrapper)", () => (i) => session.callTool("add", { a: i, b: 1 }, { tool: addTool })],
  ["`McpClientManager.callTool`, fused step", (m) => (i) => m.callTool("demo", "add", { a: i, b: 1 })],
  ["`McpClientManager.callTool`, general path", (m) => (i) => m.callTool("demo", "add", { a: i, b: 1 }, GENERAL)]
]
const manager = await base.rt.runPromise(McpClientManager.use((m) => Effect.succeed(m)))
const stubCpu = stubCases.map((): Array<number> => [])
for (let r = 0; r < ROUNDS; r++) {
  for (let k = 0; k < stubCases.length; k++) stubCpu[k]!.push(await stubLoop(stubCases[k]![1](manager)))
}
const stubRows = stubCases.map(([name], k) => `| ${name} | ${us(quantile(stubCpu[k]!, 0))} | ${us(quantile(stubCpu[k]!, 0.5))} |`)
await base.rt.dispose()
await base.raw.close()

// 2. Tool count: the first and the last tool of 11 / 1,011 / 10,011.
const toolRows: Array<string> = []
for (const extra of [0, 1_000, 10_000]) {
  const { raw: rawN, rt } = await setup(extra)
  const last = extra === 0 ? "echo" : `tool_${String(extra - 1).padStart(5, "0")}`
  const first = "echo"
  const w = newSample()
  await managerLoop(rt, first, msg, w, 500)
  await managerLoop(rt, last, msg, w, 500)
  await rawLoop(rawN, first, msg, w, 500)
  const sFirst = newSample()
  const sLast = newSample()
  const sRaw = newSample()
  const sRawFirst = newSample()
  for (let r = 0; r < ROUNDS; r++) {
    await rawLoop(rawN, first, msg, sRawFirst, PER_ROUND / 3)
    await rawLoop(rawN, last, msg, sRaw, PER_ROUND / 3)
    await managerLoop(rt, first, msg, sFirst, PER_ROUND / 3)
    await managerLoop(rt, last, msg, sLast, PER_ROUND / 3)
  }
  toolRows.push(`| ${11 + extra} | ${us(sRawFirst.cpu / sRawFirst.n)} | ${us(sRaw.cpu / sRaw.n)} | ${us(sFirst.cpu / sFirst.n)} | ${us(sLast.cpu / sLast.n)} | ${us(quantile(sFirst.wall, 0.5) - quantile(sRawFirst.wall, 0.5))} | ${us(quantile(sLast.wall, 0.5) - quantile(sRaw.wall, 0.5))} |`)
  await rt.dispose()
  await rawN.close()
}

const signed = (x: number) => `${x >= 0 ? "+" : "−"}${us(Math.abs(x))}`
const signedKiB = (x: number) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(2)} KiB`
const lines = [
  "### Manager in-process: Keel's own cost per `callTool` (demo server over `InMemoryTransport`)",
  "",
  `${ROUNDS} interleaved rounds of ${PER_ROUND} sequential \`add\` calls each. CPU is this process's user + system time per call (\`process.cpuUsage\`), which the machine's other load inflates less than wall time.`,
  "",
  "| path | CPU per call | median | p99 |",
  "| --- | ---: | ---: | ---: |",
  `| raw SDK \`Client.callTool\` | ${us(raw.cpu / raw.n)} | ${us(quantile(raw.wall, 0.5))} | ${us(quantile(raw.wall, 0.99))} |`,
  `| raw SDK \`Client.request(tools/call, schema)\` (the SDK work Keel's session does, McpToolCall) | ${us(rawRequest.cpu / rawRequest.n)} | ${us(quantile(rawRequest.wall, 0.5))} | ${us(quantile(rawRequest.wall, 0.99))} |`,
  `| \`McpClientManager.callTool\` (fused step) | ${us(mgr.cpu / mgr.n)} | ${us(quantile(mgr.wall, 0.5))} | ${us(quantile(mgr.wall, 0.99))} |`,
  `| \`McpClientManager.callTool\` with a call option (the general path) | ${us(general.cpu / general.n)} | ${us(quantile(general.wall, 0.5))} | ${us(quantile(general.wall, 0.99))} |`,
  "",
  `Over the raw \`Client.callTool\`, Keel adds **${us(mgr.cpu / mgr.n - raw.cpu / raw.n)} CPU** per call on the fused step (median latency ${signed(quantile(mgr.wall, 0.5) - quantile(raw.wall, 0.5))}); the general path adds ${us(general.cpu / general.n - raw.cpu / raw.n)} (${signed(quantile(general.wall, 0.5) - quantile(raw.wall, 0.5))}). Target ≤ 2 µs: ${mgr.cpu / mgr.n - raw.cpu / raw.n <= 2 ? "✔" : "✘"}. Over the same SDK work Keel's session does (\`request\` with a result schema), Keel's own layers add ${us(mgr.cpu / mgr.n - rawRequest.cpu / rawRequest.n)} (fused) and ${us(general.cpu / general.n - rawRequest.cpu / rawRequest.n)} (general): that is what the Effect bridge, pool, breaker, cache, validation and metrics cost with a real SDK underneath.`,
  "",
  `\`resources/read\` of \`demo://readme\` the same way (McpSurface's fused step): raw SDK \`Client.readResource\` ${us(readRaw.cpu / readRaw.n)} CPU per call (median ${us(quantile(readRaw.wall, 0.5))}), \`McpClientManager.readResource\` ${us(readManager.cpu / readManager.n)} (median ${us(quantile(readManager.wall, 0.5))}): Keel adds ${signed(readManager.cpu / readManager.n - readRaw.cpu / readRaw.n)} CPU per call.`,
  "",
  `Memory allocated per call, client and in-process server together (V8's sampling heap profiler, one sample per 128 bytes, ${ALLOC_CALLS} calls each; garbage included): what the manager allocates beyond the SDK's own work is what the process's garbage collector, on its helper threads too, has to clear.`,
  "",
  "| path | KiB per call | vs raw `callTool` |",
  "| --- | ---: | ---: |",
  ...allocRows.map(([name], k) => `| ${name} | ${allocated[k]!.toFixed(2)} | ${signedKiB(allocated[k]! - allocated[0]!)} |`),
  "",
  `Keel's own layers alone: the session's SDK client answers at once (\`Promise.resolve\`), ${ROUNDS} rounds of ${STUB} calls, CPU per call (fastest round and median round):`,
  "",
  "| path | CPU, fastest round | CPU, median round |",
  "| --- | ---: | ---: |",
  ...stubRows,
  "",
  "Per-call cost by tool count, CPU per call and the manager's added median latency (`echo` is the list's first tool, `tool_NNNNN` its last). The raw SDK call itself grows with the list (the SDK and the demo server look tools up by scanning); Keel's own part should not:",
  "",
  "| tools | raw CPU, first | raw CPU, last | manager CPU, first | manager CPU, last | manager − raw median, first | manager − raw median, last |",
  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...toolRows,
  "",
  "In-process figures understate the cost over a pipe: there the same work runs after the process wakes from waiting on the pipe, with cold caches, while the child competes for the same cores."
]
console.log(lines.join("\n"))
console.log(machine())
if (!smoke) writeResults("manager-inprocess", lines)
