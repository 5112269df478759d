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
 *  3. `callTool` throughput with 32 concurrent callers and pool sizes 1, 2 and 4;
 *  4. beside the warm acquire+release, a bare Effect `Pool.use` and a `Map` lookup + `Pool.use` (what the
 *     pool is built on), timed the same way in the same process;
 *  5. `balance: "fill-first"` (Effect `Pool`'s order) vs `"least-loaded"` on the demo server's `work` tool
 *     (each call burns WORK_MS of the server's CPU), 4 warm sessions, 1 to 32 concurrent callers;
 *  6. when a pool pays: 32 callers on `work` at 1 ms and 4 ms of server CPU per call, pools of 1, 2 and 4
 *     sessions (least-loaded), the sizes interleaved over rounds, with this process's CPU per call beside.
 * Prints a markdown table and writes bench/RESULTS-connection-pool.md. Every number comes from this run.
 */
import { execSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { fileURLToPath } from "node:url"
import { Effect, Pool } from "effect"
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
const WORK_MS = 4
const WORK_RUN_MS = 2_000
const WORK_CONCURRENCY = [1, 2, 4, 8, 32] as const
const WORK_SESSIONS = 4
const PAYS_WORK_MS = [1, 4] as const
const PAYS_SIZES = [1, 2, 4] as const
const PAYS_ROUNDS = 3
const PAYS_RUN_MS = 1_500

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
  // the same loop over a bare Effect Pool (what each server's sessions live in), and with a Map lookup
  const bare = yield* Pool.make({ acquire: Effect.succeed({ id: 1 }), size: 1, concurrency: 32 })
  const byName = new Map([["bench", bare]])
  const poolBody = () => Effect.void
  for (let i = 0; i < 20_000; i++) yield* Pool.use(bare, poolBody)
  const bareSamples: Array<number> = []
  const mapSamples: Array<number> = []
  for (let i = 0; i < ACQUIRE_SAMPLES; i++) {
    const t1 = performance.now()
    yield* Pool.use(bare, poolBody)
    bareSamples.push((performance.now() - t1) * 1_000)
  }
  for (let i = 0; i < ACQUIRE_SAMPLES; i++) {
    const t1 = performance.now()
    yield* Pool.use(byName.get("bench")!, poolBody)
    mapSamples.push((performance.now() - t1) * 1_000)
  }
  return { samples, baseline, batchedUs, bareSamples, mapSamples }
}).pipe(Effect.scoped)

/** `work` calls (`workMs` of server CPU each) through `sessions` warm sessions, `callers` at once, for `runMs`. */
const balanced = (
  balance: "fill-first" | "least-loaded",
  callers: number,
  sessions: number = WORK_SESSIONS,
  workMs: number = WORK_MS,
  runMs: number = WORK_RUN_MS
) =>
  Effect.gen(function*() {
    const pool = yield* ConnectionPool.make({
      maxConnections: sessions,
      minIdle: sessions,
      maxRequestsPerConnection: CALLERS,
      balance
    })
    yield* pool.add("bench", servers[0]!.config)
    while ((yield* pool.stats("bench")).idle < sessions) yield* Effect.sleep(20)
    for (let i = 0; i < 20; i++) yield* pool.use("bench", (c) => c.callTool("work", { ms: workMs }))
    const latencies: Array<number> = []
    const deadline = performance.now() + runMs
    const caller = Effect.gen(function*() {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        yield* pool.use("bench", (c) => c.callTool("work", { ms: workMs }))
        latencies.push(performance.now() - t0)
      }
    })
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    yield* Effect.all(Array.from({ length: callers }, () => caller), { concurrency: "unbounded", discard: true })
    const elapsed = (performance.now() - t0) / 1_000
    const cpu = process.cpuUsage(cpu0)
    return {
      balance,
      callers,
      callsPerSec: latencies.length / elapsed,
      p50: median(latencies),
      p99: quantile(latencies, 0.99),
      clientCpuUs: (cpu.user + cpu.system) / Math.max(1, latencies.length)
    }
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
  // fill-first and least-loaded interleaved per concurrency, so drift on the shared machine hits both
  const balance: Array<{ readonly balance: string; readonly callers: number; readonly callsPerSec: number; readonly p50: number; readonly p99: number }> = []
  for (const callers of WORK_CONCURRENCY) {
    balance.push(yield* balanced("fill-first", callers))
    balance.push(yield* balanced("least-loaded", callers))
  }
  // When a pool pays: the pool sizes interleaved round by round, per work size.
  const pays = new Map<string, Array<{ readonly callsPerSec: number; readonly clientCpuUs: number }>>()
  for (let round = 0; round < PAYS_ROUNDS; round++) {
    for (const workMs of PAYS_WORK_MS) {
      for (const size of PAYS_SIZES) {
        const r = yield* balanced("least-loaded", CALLERS, size, workMs, PAYS_RUN_MS)
        const key = `${workMs}/${size}`
        pays.set(key, [...(pays.get(key) ?? []), r])
      }
    }
  }
  return { results, ar, balance, pays, seconds: (performance.now() - started) / 1_000 }
})

const { results, ar, balance, pays, seconds } = await Effect.runPromise(program)

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
lines.push(`| for comparison, bare Effect \`Pool.use\` (median, same loop) | ${fmt(median(ar.bareSamples))} |`)
lines.push(`| for comparison, \`Map\` lookup + \`Pool.use\` (median, same loop) | ${fmt(median(ar.mapSamples))} |`)
for (const r of results) {
  lines.push(`| new connection per call / warm acquire+release, ${r.label} | ${fmt0((median(r.spawnMs) * 1_000) / arMedian)}× |`)
}
lines.push("")
lines.push(`| \`callTool\` echo, ${CALLERS} concurrent callers, ${THROUGHPUT_MS / 1_000} s each | pool size 1 | pool size 2 | pool size 4 |`)
lines.push("| --- | ---: | ---: | ---: |")
for (const r of results) {
  lines.push(`| ${r.label} (calls/s) | ${r.throughput.map((t) => fmt0(t.callsPerSec)).join(" | ")} |`)
}
lines.push("")
lines.push(`| \`work\` (${WORK_MS} ms of server CPU per call), ${WORK_SESSIONS} warm sessions, ${WORK_RUN_MS / 1_000} s each | fill-first calls/s | least-loaded calls/s | fill-first p50 / p99 ms | least-loaded p50 / p99 ms |`)
lines.push("| --- | ---: | ---: | ---: | ---: |")
for (const callers of WORK_CONCURRENCY) {
  const ff = balance.find((b) => b.balance === "fill-first" && b.callers === callers)!
  const ll = balance.find((b) => b.balance === "least-loaded" && b.callers === callers)!
  lines.push(
    `| ${callers} concurrent caller${callers === 1 ? "" : "s"} | ${fmt0(ff.callsPerSec)} | ${fmt0(ll.callsPerSec)} | ` +
      `${fmt(ff.p50, 1)} / ${fmt(ff.p99, 1)} | ${fmt(ll.p50, 1)} / ${fmt(ll.p99, 1)} |`
  )
}
lines.push("")
lines.push(`| \`work\`, ${CALLERS} concurrent callers, least-loaded, median of ${PAYS_ROUNDS} interleaved rounds of ${PAYS_RUN_MS / 1_000} s | pool size 1 | pool size 2 | pool size 4 | pool of 2 / pool of 1 | client CPU per call (pool of 1) |`)
lines.push("| --- | ---: | ---: | ---: | ---: | ---: |")
const paysOf = (workMs: number, size: number) => median(pays.get(`${workMs}/${size}`)!.map((r) => r.callsPerSec))
for (const workMs of PAYS_WORK_MS) {
  const one = paysOf(workMs, 1)
  lines.push(
    `| ${workMs} ms of server CPU per call (calls/s) | ${PAYS_SIZES.map((size) => fmt0(paysOf(workMs, size))).join(" | ")} | ` +
      `${fmt(paysOf(workMs, 2) / one, 2)}× | ${fmt(median(pays.get(`${workMs}/1`)!.map((r) => r.clientCpuUs)), 0)} µs |`
  )
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
- *bare \`Pool.use\`*: Effect's own pool with one ready item, the loop and timer of the warm row.
- *fill-first vs least-loaded*: the demo server's \`work\` tool burns ${WORK_MS} ms of the server process's CPU per
  call; ${WORK_SESSIONS} warm sessions (4 child processes), \`maxRequestsPerConnection\` ${CALLERS}; N fibers call it in
  a loop for ${WORK_RUN_MS / 1_000} s; the two orders alternate per concurrency.
- *when a pool pays*: ${CALLERS} fibers call \`work\` (1 ms or 4 ms of the server's CPU per call) through pools of 1, 2
  and 4 warm sessions (each session is its own child process), least-loaded; the sizes alternate within each of
  ${PAYS_ROUNDS} rounds; the last column is this (client) process's CPU per call. The rule it shows: more sessions
  only pay while the server's CPU per call is well above the client's and a core is free for each extra child;
  on this 2-core machine the client process and the children share the two cores.

${table}
`
)
