/**
 * Where the SDK v2 client spends more than the SDK v1 client on the same call: both clients talk to the same
 * v2 demo server in this process (each over its own SDK's `InMemoryTransport`), so the server's share is the
 * same and the difference is the client's. Interleaved rounds of sequential `tools/call add`, CPU per call
 * (`process.cpuUsage`); then a CPU profile of each client's loop (`node:inspector`, the same number of
 * calls) split by package; then the one piece of v2 work found to be pure waste, measured alone: the
 * result-validator probe `Protocol.request` runs on every request (`codecResultValidator` validates
 * `undefined` against the method's result schema to learn whether the method exists in the era, and turns the
 * failed parse into a message string).
 *
 *   export PATH=$PWD/node_modules/.bin:$PATH && node bench/sdk.bench.ts
 *
 * Writes bench/RESULTS-sdk.md. Every number comes from this run.
 */
import { Client, InMemoryTransport } from "@modelcontextprotocol/client"
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js"
import { InMemoryTransport as InMemoryTransportV1 } from "@modelcontextprotocol/sdk/inMemory.js"
import { createDemoServer, DemoState, parseOptions } from "@keel/demo-server"
import { Session } from "node:inspector/promises"
import { callToolResultSchema } from "../packages/core/src/McpToolCall.ts"
import { quantile, writeResults } from "./report.ts"

const smoke = process.env.KEEL_BENCH_SMOKE === "1"
const ROUNDS = smoke ? 3 : 10
const PER_ROUND = smoke ? 500 : 3_000
const PROFILE_CALLS = smoke ? 2_000 : 20_000

const demoState = new DemoState(parseOptions([]))
const v2 = new Client({ name: "bench", version: "1" })
{
  const [c, s] = InMemoryTransport.createLinkedPair()
  await createDemoServer(demoState).connect(s as never)
  await v2.connect(c)
  await v2.listTools()
}
const v1 = new ClientV1({ name: "bench", version: "1" })
{
  const [c, s] = InMemoryTransportV1.createLinkedPair()
  await createDemoServer(demoState).connect(s as never)
  await v1.connect(c)
  await v1.listTools()
}
const args = (i: number) => ({ a: i, b: 1 })
const contenders = {
  "SDK v1 1.32.2 `Client.callTool`": (i: number) => v1.callTool({ name: "add", arguments: args(i) }),
  "SDK v2 2.4.0 `Client.callTool`": (i: number) => v2.callTool({ name: "add", arguments: args(i) }),
  "SDK v2 2.4.0 `Client.request(tools/call)`": (i: number) => v2.request({ method: "tools/call", params: { name: "add", arguments: args(i) } }),
  "SDK v2 2.4.0 `Client.request(tools/call, schema)` (what Keel's session sends: McpToolCall)": (i: number) =>
    v2.request({ method: "tools/call", params: { name: "add", arguments: args(i) } }, callToolResultSchema)
} as const
type Name = keyof typeof contenders
const names = Object.keys(contenders) as Array<Name>

const loop = async (f: (i: number) => Promise<unknown>, n: number) => {
  for (let i = 0; i < n; i++) await f(i)
}
for (const name of names) await loop(contenders[name], 2_000)

// 1. CPU per call, interleaved rounds.
const cpu = new Map<Name, Array<number>>(names.map((n) => [n, []]))
for (let r = 0; r < ROUNDS; r++) {
  for (const name of names) {
    const c0 = process.cpuUsage()
    await loop(contenders[name], PER_ROUND)
    const c = process.cpuUsage(c0)
    cpu.get(name)!.push((c.user + c.system) / PER_ROUND)
  }
}
const cpuMedian = (n: Name) => quantile(cpu.get(n)!, 0.5)

// 2. A profile of each client's loop, self time split by package.
const session = new Session()
session.connect()
await session.post("Profiler.enable")
await session.post("Profiler.setSamplingInterval", { interval: 100 })
interface ProfileNode { id: number; callFrame: { url: string; functionName: string }; children?: Array<number> }
const packageOf = (url: string): string => {
  const m = /node_modules\/\.pnpm\/([^/]+)\//.exec(url)
  if (m !== null) return m[1]!.replace(/@([\d.]+).*$/, "")
  if (url.includes("demo-server")) return "demo server"
  if (url === "") return "(gc, native, idle)"
  if (url.startsWith("node:")) return "node internals"
  return "other"
}
const profileOf = async (f: (i: number) => Promise<unknown>): Promise<Map<string, number>> => {
  await session.post("Profiler.start")
  await loop(f, PROFILE_CALLS)
  const { profile } = await session.post("Profiler.stop") as unknown as {
    profile: { nodes: Array<ProfileNode>; samples: Array<number>; timeDeltas: Array<number> }
  }
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const out = new Map<string, number>()
  profile.samples.forEach((id, i) => {
    const key = packageOf(byId.get(id)!.callFrame.url)
    out.set(key, (out.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / PROFILE_CALLS)
  })
  return out
}
// Each client's loop profiled twice, alternating (v1, v2, v1, v2), and the two averaged.
const average = (a: Map<string, number>, b: Map<string, number>) =>
  new Map([...new Set([...a.keys(), ...b.keys()])].map((k) => [k, ((a.get(k) ?? 0) + (b.get(k) ?? 0)) / 2] as const))
const v1First = await profileOf(contenders[names[0]!])
const v2First = await profileOf(contenders[names[1]!])
const prof1 = average(v1First, await profileOf(contenders[names[0]!]))
const prof2 = average(v2First, await profileOf(contenders[names[1]!]))
await session.post("Profiler.disable")
session.disconnect()

// 3. The probe alone: what `Protocol.request` does first on every request (SDK internals, read only here).
const codec = (v2 as unknown as { _negotiatedWireCodec: () => { validateResult: (m: string, raw: unknown) => { ok: boolean } } })
  ._negotiatedWireCodec()
const realResult = await v2.request({ method: "tools/call", params: { name: "add", arguments: args(1) } })
const timeIt = (f: () => unknown, n: number) => {
  const samples: Array<number> = []
  for (let r = 0; r < 20; r++) {
    const t = performance.now()
    for (let i = 0; i < n; i++) f()
    samples.push((performance.now() - t) * 1000 / n)
  }
  return quantile(samples, 0.5)
}
const probe = timeIt(() => codec.validateResult("tools/call", undefined), smoke ? 500 : 5_000)
const validate = timeIt(() => codec.validateResult("tools/call", realResult), smoke ? 500 : 5_000)

const us = (x: number) => `${x.toFixed(2)} µs`
const v1Cpu = cpuMedian(names[0]!)
const rows = [...new Set([...prof1.keys(), ...prof2.keys()])]
  .map((k) => ({ k, a: prof1.get(k) ?? 0, b: prof2.get(k) ?? 0 }))
  .sort((x, y) => (y.b - y.a) - (x.b - x.a))
const lines = [
  "## SDK v1 vs SDK v2 client on the same server (`bench/sdk.bench.ts`)",
  "",
  "Both clients call `add` on the same v2 demo server in this process (no pipe), so the server's share is the",
  `same and the difference is the client's. ${ROUNDS} interleaved rounds of ${PER_ROUND} sequential calls; CPU is this process's`,
  "user + system time per call (median round).",
  "",
  "| client | CPU per call | vs SDK v1 |",
  "| --- | ---: | ---: |",
  ...names.map((n) => `| ${n} | ${us(cpuMedian(n))} | ${(cpuMedian(n) / v1Cpu).toFixed(2)}× |`),
  "",
  `Profile (\`node:inspector\`, 100 µs sampling, ${PROFILE_CALLS} calls each), self time per call by package, largest v2 − v1 difference first:`,
  "",
  "| package | SDK v1 loop | SDK v2 loop | v2 − v1 |",
  "| --- | ---: | ---: | ---: |",
  ...rows.map(({ a, b, k }) => `| ${k} | ${us(a)} | ${us(b)} | ${us(b - a)} |`),
  "",
  "The v2 client's extra zod time is mostly one thing: `Protocol.request` calls `codecResultValidator(codec, method)`",
  "on every request, which validates `undefined` against the method's result schema to learn whether the method",
  "exists in the negotiated era, and a failed zod parse builds its issues and the error message",
  "(`String(parsed.error)`). Measured alone in this run:",
  "",
  "| v2 codec call | µs per call |",
  "| --- | ---: |",
  `| \`validateResult("tools/call", undefined)\` (the per-request probe, always fails) | ${us(probe)} |`,
  `| \`validateResult("tools/call", result)\` (the real validation of an \`add\` result) | ${us(validate)} |`,
  "",
  "The probe's answer depends only on the method and the era, so it could be computed once per method (or by",
  "a schema lookup without parsing). The fix belongs in the SDK: this is the measured case to report upstream.",
  "A client skips the probe only by passing its own result schema to `request(request, schema, options)` (the",
  "SDK's public overload). Keel does that for a tool whose definition it holds (`McpToolCall`: the SDK's own",
  "`CallToolResult` spec schema behind the era codec's guard, and the `outputSchema` check `Client.callTool`",
  "does): the last row. `Client.callTool` adds, over `request`, an awaited output-validator cache lookup and the",
  "`Mcp-Param-*` header scan (the third row shows what is left without those)."
]
console.log(lines.join("\n"))
writeResults("sdk", lines)
process.exit(0)
