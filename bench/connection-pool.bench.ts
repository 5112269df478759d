/**
 * Connection pool benchmark. Run from the repo root with Node 22:
 *
 *   export PATH=$PWD/node_modules/.bin:$PATH && node bench/connection-pool.bench.ts
 *
 * One run measures, side by side, against the demo server and against
 * `@modelcontextprotocol/server-everything` (both over stdio):
 *  1. a new connection per call (spawn + initialize + `echo` + close) vs a pooled call (`pool.use` + `echo`
 *     on a warm session), and the ratio;
 *  2. the warm acquire+release cost alone (`pool.use(server, () => Effect.void)`), per-op samples in µs;
 *  3. `callTool` throughput with 32 concurrent callers and pool sizes 1, 2 and 4.
 * Prints a markdown table and writes bench/RESULTS-connection-pool.md. Every number comes from this run.
 */
import { execSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { demoStdio } from "../packages/demo-server/src/index.ts"
import * as ConnectionPool from "../packages/core/src/ConnectionPool.ts"
import { McpClient } from "../packages/core/src/McpClient.ts"
import type { ServerConfig } from "../packages/core/src/ServerConfig.ts"
import { quantile } from "./report.ts"

const root = fileURLToPath(new URL("..", import.meta.url))
const everythingEntry = `${root}node_modules/@modelcontextprotocol/server-everything/dist/index.js`

const SPAWNS = 5
const POOLED_CALLS = 2_000
const ACQUIRE_SAMPLES = 200_000
const THROUGHPUT_MS = 2_500
const CALLERS = 32

const servers: ReadonlyArray<{ readonly label: string; readonly config: ServerConfig }> = [
  { label: "demo server", config: { type: "stdio", ...demoStdio({ name: "keel-bench-pool" }) } },
  { label: "server-everything", config: { type: "stdio", command: process.execPath, args: [everythingEntry, "stdio"] } }
]

const median = (xs: ReadonlyArray<number>) => quantile(xs, 0.5)
const fmt = (n: number, digits = 2) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
const fmt0 = (n: number) => Math.round(n).toLocaleString("en-US")

interface ServerResult {
  readonly label: string
  readonly spawnMs: ReadonlyArray<number>
  readonly pooledUs: ReadonlyArray<number>
  readonly throughput: ReadonlyArray<{ readonly size: number; readonly callsPerSec: number; readonly created: number }>
}

/** A new connection per call: spawn, initialize, echo, close. */
const spawnPerCall = (config: ServerConfig) =>
  Effect.gen(function*() {
    const samples: Array<number> = []
    for (let i = 0; i < SPAWNS; i++) {
      const t0 = performance.now()
      yield* Effect.scoped(
        Effect.flatMap(McpClient.connect("bench", config), (c) => c.callTool("echo", { message: "hi" }))
      )
      samples.push(performance.now() - t0)
    }
    return samples
  })

/** `pool.use` + echo on a warm session, one call at a time. */
const pooledCalls = (config: ServerConfig) =>
  Effect.gen(function*() {
    const pool = yield* ConnectionPool.make({ maxConnections: 1 })
    yield* pool.add("bench", config)
    for (let i = 0; i < 100; i++) yield* pool.use("bench", (c) => c.callTool("echo", { message: "hi" }))
    const samples: Array<number> = []
    for (let i = 0; i < POOLED_CALLS; i++) {
      const t0 = performance.now()
      yield* pool.use("bench", (c) => c.callTool("echo", { message: "hi" }))
      samples.push((performance.now() - t0) * 1_000)
    }
    return samples
  }).pipe(Effect.scoped)

/** 32 callers looping `pool.use(echo)` for a fixed time on a pool of `size` warm sessions. */
const throughput = (config: ServerConfig, size: number) =>
  Effect.gen(function*() {
    const pool = yield* ConnectionPool.make({ maxConnections: size, minIdle: size, maxRequestsPerConnection: CALLERS })
    yield* pool.add("bench", config)
    while ((yield* pool.stats("bench")).idle < size) yield* Effect.sleep(20)
    let calls = 0
    const deadline = performance.now() + THROUGHPUT_MS
    const caller = Effect.gen(function*() {
      while (performance.now() < deadline) {
        const r = yield* pool.use("bench", (c) => c.callTool("echo", { message: "hi" }))
        const first = r.content[0]
        if (first?.type !== "text" || !first.text.includes("hi")) return yield* Effect.die(new Error("bad echo result"))
        calls++
      }
    })
    const t0 = performance.now()
    yield* Effect.all(Array.from({ length: CALLERS }, () => caller), { concurrency: "unbounded", discard: true })
    const elapsed = (performance.now() - t0) / 1_000
    return { size, callsPerSec: calls / elapsed, created: (yield* pool.stats("bench")).created }
  }).pipe(Effect.scoped)

/** Warm acquire+release with no work: per-op samples, plus the loop's own overhead. */
const acquireRelease = Effect.gen(function*() {
  const pool = yield* ConnectionPool.make({ maxConnections: 1 })
  yield* pool.add("bench", servers[0]!.config)
  yield* pool.use("bench", () => Effect.void)
  const body = () => Effect.void
  for (let i = 0; i < 20_000; i++) yield* pool.use("bench", body) // JIT warm-up
  const samples: Array<number> = []
  const baseline: Array<number> = []
  for (let i = 0; i < ACQUIRE_SAMPLES; i++) {
    const t0 = performance.now()
    yield* pool.use("bench", body)
    samples.push((performance.now() - t0) * 1_000)
  }
  for (let i = 0; i < ACQUIRE_SAMPLES; i++) {
    const t0 = performance.now()
    yield* Effect.void
    baseline.push((performance.now() - t0) * 1_000)
  }
  // batched: one timer around many ops, free of the per-sample timer cost
  const batchOps = 100_000
  const t0 = performance.now()
  for (let i = 0; i < batchOps; i++) yield* pool.use("bench", body)
  const batchedUs = ((performance.now() - t0) * 1_000) / batchOps
  return { samples, baseline, batchedUs }
}).pipe(Effect.scoped)

const program = Effect.gen(function*() {
  const started = performance.now()
  const results: Array<ServerResult> = []
  for (const s of servers) {
    const spawnMs = yield* spawnPerCall(s.config)
    const pooledUs = yield* pooledCalls(s.config)
    const tp = []
    for (const size of [1, 2, 4]) tp.push(yield* throughput(s.config, size))
    results.push({ label: s.label, spawnMs, pooledUs, throughput: tp })
  }
  const ar = yield* acquireRelease
  return { results, ar, seconds: (performance.now() - started) / 1_000 }
})

const { results, ar, seconds } = await Effect.runPromise(program)

const cpuModel = cpus()[0]?.model ?? "unknown"
const nproc = execSync("nproc").toString().trim()
const lines: Array<string> = []
lines.push("| server (stdio) | new connection per call, median | pooled call (`pool.use` + echo), median | ratio |")
lines.push("| --- | ---: | ---: | ---: |")
for (const r of results) {
  const spawn = median(r.spawnMs)
  const pooled = median(r.pooledUs)
  lines.push(`| ${r.label} | ${fmt(spawn, 1)} ms (n=${r.spawnMs.length}) | ${fmt(pooled, 1)} µs (n=${r.pooledUs.length}) | ${fmt0((spawn * 1_000) / pooled)}× |`)
}
lines.push("")
const arMedian = median(ar.samples)
lines.push("| warm acquire+release (`pool.use(server, () => Effect.void)`) | µs |")
lines.push("| --- | ---: |")
lines.push(`| median (per-op samples, n=${fmt0(ar.samples.length)}) | ${fmt(arMedian)} |`)
lines.push(`| p99 | ${fmt(quantile(ar.samples, 0.99))} |`)
lines.push(`| timer + loop overhead alone (median, included above) | ${fmt(median(ar.baseline))} |`)
lines.push(`| mean over a batch of 100,000 (one timer) | ${fmt(ar.batchedUs)} |`)
for (const r of results) {
  lines.push(`| new connection per call / warm acquire+release, ${r.label} | ${fmt0((median(r.spawnMs) * 1_000) / arMedian)}× |`)
}
lines.push("")
lines.push(`| \`callTool\` echo, ${CALLERS} concurrent callers, ${THROUGHPUT_MS / 1_000} s each | pool size 1 | pool size 2 | pool size 4 |`)
lines.push("| --- | ---: | ---: | ---: |")
for (const r of results) {
  lines.push(`| ${r.label} (calls/s) | ${r.throughput.map((t) => fmt0(t.callsPerSec)).join(" | ")} |`)
}
const table = lines.join("\n")
const machine = `nproc ${nproc}; node ${process.version}; CPU ${cpuModel}; run took ${fmt(seconds, 1)} s`

console.log(table)
console.log("")
console.log(machine)

writeFileSync(
  new URL("./RESULTS-connection-pool.md", import.meta.url),
  `# ConnectionPool benchmark

Produced by \`node bench/connection-pool.bench.ts\` (one run; every number below was measured in it).

Machine: ${machine}.
The machine is shared (2 cores, other processes running), so absolute figures are noisy; the ratios come
from the same run.

- *new connection per call*: \`McpClient.connect\` (spawn + initialize) + one \`echo\` + close, ${SPAWNS} times.
- *pooled call*: \`pool.use(server, c => c.callTool("echo"))\` on one warm session, ${fmt0(POOLED_CALLS)} times in a row.
- *warm acquire+release*: \`pool.use\` with an empty body, timed per op with \`performance.now()\` (the timer's
  own cost is in the figure; its size alone is shown).
- *throughput*: ${CALLERS} fibers calling \`echo\` through \`pool.use\` in a loop; the pool holds 1, 2 or 4 warm
  sessions (\`minIdle\` = \`maxConnections\`, \`maxRequestsPerConnection\` ${CALLERS}: callers spread over the
  least-loaded session).

${table}
`
)
