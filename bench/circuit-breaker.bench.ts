/**
 * Circuit breaker benchmark: Keel's breaker vs a bare call, cockatiel and opossum, measured in one run.
 *
 *   node bench/circuit-breaker.bench.ts            # print the table
 *   node bench/circuit-breaker.bench.ts --write    # also write bench/RESULTS-circuit-breaker.md
 *
 * Method: each case runs `BATCH` operations back to back and records the batch's time / BATCH as one sample
 * (single-op timings are dominated by the timer's own cost). Median and p99 are over the samples; ops/s is
 * total operations / total time. Every case is warmed up first. Overhead = case median − its bare baseline.
 */
import CockatielDefault, * as CockatielNs from "cockatiel"
import OpossumBreaker from "opossum"
import { execSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import * as os from "node:os"
import { Effect, Exit, Scope } from "effect"
import * as CB from "../packages/core/src/CircuitBreaker.ts"

const Cockatiel = (CockatielNs as any).circuitBreaker ? CockatielNs : (CockatielDefault as any)

const BATCH = 200
const SAMPLES = Number(process.env.SAMPLES ?? 400)
const WARMUP = 100

interface Result {
  readonly name: string
  readonly median: number // µs per op
  readonly p99: number
  readonly opsPerSec: number
}

const summarize = (name: string, samples: Array<number>, totalOps: number, totalNs: number): Result => {
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
  return { name, median: at(0.5), p99: at(0.99), opsPerSec: totalOps / (totalNs / 1e9) }
}

/** A synchronous batch runner (for Effect programs run with runSync). */
const benchSync = (name: string, batch: () => void): Result => {
  for (let i = 0; i < WARMUP; i++) batch()
  const samples: Array<number> = []
  let total = 0
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = process.hrtime.bigint()
    batch()
    const ns = Number(process.hrtime.bigint() - t0)
    total += ns
    samples.push(ns / BATCH / 1000)
  }
  return summarize(name, samples, SAMPLES * BATCH, total)
}

const benchAsync = async (name: string, batch: () => Promise<void>): Promise<Result> => {
  for (let i = 0; i < WARMUP; i++) await batch()
  const samples: Array<number> = []
  let total = 0
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = process.hrtime.bigint()
    await batch()
    const ns = Number(process.hrtime.bigint() - t0)
    total += ns
    samples.push(ns / BATCH / 1000)
  }
  return summarize(name, samples, SAMPLES * BATCH, total)
}

/** Repeats an effect BATCH times inside one fiber; the loop itself is shared by baseline and breaker. */
const loop = <A, E>(self: Effect.Effect<A, E>): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let i = 0; i < BATCH; i++) yield* Effect.exit(self)
  })

const main = async () => {
  const results: Array<Result> = []
  // breakers live in this scope until the end of the run
  const scope = Scope.makeUnsafe()
  const make = (server: string, config: CB.CircuitBreakerConfigInput = {}) =>
    Effect.runSync(Scope.provide(CB.make(server, config), scope))

  // ---------------------------------------------------------------------------------------------------- Effect
  const trivial = Effect.succeed(1)
  const closedBreaker = make("bench-closed")
  const openBreaker = make("bench-open", { consecutiveFailureThreshold: 1, waitDurationInOpen: "1 hour" })
  Effect.runSync(Effect.exit(openBreaker.execute(Effect.fail("boom"))))
  if (Effect.runSync(openBreaker.state) !== "Open") throw new Error("open breaker did not open")

  const bareLoop = loop(trivial)
  const closedLoop = loop(closedBreaker.execute(trivial))
  const rejectLoop = loop(openBreaker.execute(trivial))
  const bareFailLoop = loop(Effect.fail("boom"))

  // --------------------------------------------------------------------------------------- promise-based ops
  const asyncOp = () => Promise.resolve(1)
  const effectAsyncOp = Effect.promise(asyncOp)
  const bareEffectAsyncLoop = loop(effectAsyncOp)
  const closedEffectAsyncLoop = loop(closedBreaker.execute(effectAsyncOp))

  const cockatielPolicy = Cockatiel.circuitBreaker(Cockatiel.handleAll, {
    halfOpenAfter: 10_000,
    breaker: new Cockatiel.ConsecutiveBreaker(5)
  })
  const cockatielOpen = Cockatiel.circuitBreaker(Cockatiel.handleAll, {
    halfOpenAfter: 3_600_000,
    breaker: new Cockatiel.ConsecutiveBreaker(1)
  })
  try {
    await cockatielOpen.execute(() => Promise.reject(new Error("boom")))
  } catch {}
  if (String(cockatielOpen.state) !== String(Cockatiel.CircuitState.Open)) throw new Error("cockatiel did not open")

  const opossum = new OpossumBreaker(asyncOp, {}) // defaults: 10 s timeout per call, rolling stats
  const opossumOpen = new OpossumBreaker(asyncOp, { resetTimeout: 3_600_000 })
  opossumOpen.open()
  // opossum rejects with an error while open and emits 'reject'; keep the process quiet
  opossumOpen.fallback(() => undefined)
  opossumOpen.removeAllListeners("fallback")
  const opossumOpenNoFallback = new OpossumBreaker(asyncOp, { resetTimeout: 3_600_000 })
  opossumOpenNoFallback.open()

  // Interleave the runs so drift (GC, turbo) hits every case alike: 3 rounds, keep each case's best round.
  const cases: Array<[string, () => Result | Promise<Result>]> = [
    ["bare Effect (sync op)", () => benchSync("bare Effect (sync op)", () => Effect.runSync(bareLoop))],
    ["Keel closed (sync op)", () => benchSync("Keel closed (sync op)", () => Effect.runSync(closedLoop))],
    ["bare Effect fail (sync)", () => benchSync("bare Effect fail (sync)", () => Effect.runSync(bareFailLoop))],
    ["Keel open: rejection", () => benchSync("Keel open: rejection", () => Effect.runSync(rejectLoop))],
    [
      "bare Effect.promise",
      () => benchAsync("bare Effect.promise", () => Effect.runPromise(bareEffectAsyncLoop))
    ],
    [
      "Keel closed (Effect.promise op)",
      () => benchAsync("Keel closed (Effect.promise op)", () => Effect.runPromise(closedEffectAsyncLoop))
    ],
    ["bare async fn", () =>
      benchAsync("bare async fn", async () => {
        for (let i = 0; i < BATCH; i++) await asyncOp()
      })],
    ["cockatiel closed", () =>
      benchAsync("cockatiel closed", async () => {
        for (let i = 0; i < BATCH; i++) await cockatielPolicy.execute(asyncOp)
      })],
    ["cockatiel open: rejection", () =>
      benchAsync("cockatiel open: rejection", async () => {
        for (let i = 0; i < BATCH; i++) {
          try {
            await cockatielOpen.execute(asyncOp)
          } catch {}
        }
      })],
    ["opossum closed", () =>
      benchAsync("opossum closed", async () => {
        for (let i = 0; i < BATCH; i++) await opossum.fire()
      })],
    ["opossum open: rejection", () =>
      benchAsync("opossum open: rejection", async () => {
        for (let i = 0; i < BATCH; i++) {
          try {
            await opossumOpenNoFallback.fire()
          } catch {}
        }
      })]
  ]
  const best = new Map<string, Result>()
  for (let round = 0; round < 3; round++) {
    for (const [name, run] of cases) {
      const r = await run()
      const prev = best.get(name)
      if (prev === undefined || r.median < prev.median) best.set(name, r)
    }
  }
  for (const [name] of cases) results.push(best.get(name)!)

  // ------------------------------------------------------------------ fail fast vs waiting out a hung server
  const HUNG_TIMEOUT_MS = 100
  const hungBreaker = make("bench-hung", { consecutiveFailureThreshold: 3, waitDurationInOpen: "1 hour" })
  const hungCall = Effect.timeout(Effect.never, HUNG_TIMEOUT_MS)
  const hungTimes: Array<number> = []
  for (let i = 0; i < 6; i++) {
    const t0 = process.hrtime.bigint()
    const exit = await Effect.runPromise(Effect.exit(hungBreaker.execute(hungCall)))
    hungTimes.push(Number(process.hrtime.bigint() - t0) / 1e6)
    if (Exit.isSuccess(exit)) throw new Error("hung call succeeded")
  }

  // ------------------------------------------------------------------------------------------------ report
  const get = (name: string) => results.find((r) => r.name === name)!
  const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(3))
  const rows = results.map((r) => `| ${r.name} | ${fmt(r.median)} | ${fmt(r.p99)} | ${Math.round(r.opsPerSec).toLocaleString("en-US")} |`)
  const overhead = (name: string, baseline: string) => get(name).median - get(baseline).median
  const keelClosed = overhead("Keel closed (sync op)", "bare Effect (sync op)")
  const keelClosedP99 = get("Keel closed (sync op)").p99 - get("bare Effect (sync op)").p99
  const keelClosedAsync = overhead("Keel closed (Effect.promise op)", "bare Effect.promise")
  const cockClosed = overhead("cockatiel closed", "bare async fn")
  const opoClosed = overhead("opossum closed", "bare async fn")
  const keelReject = get("Keel open: rejection").median
  const keelRejectNet = overhead("Keel open: rejection", "bare Effect fail (sync)")
  const table = [
    "| case | median µs/op | p99 µs/op | ops/s |",
    "|---|---:|---:|---:|",
    ...rows
  ].join("\n")
  const derived = [
    "| derived (from the rows above) | value |",
    "|---|---:|",
    `| Keel closed-path overhead, sync op (median; target ≤ 1 µs) | ${fmt(keelClosed)} µs |`,
    `| Keel closed-path overhead, sync op (p99 − p99) | ${fmt(keelClosedP99)} µs |`,
    `| Keel closed-path overhead, Effect.promise op (median) | ${fmt(keelClosedAsync)} µs |`,
    `| cockatiel closed-path overhead (median) | ${fmt(cockClosed)} µs |`,
    `| opossum closed-path overhead (median) | ${fmt(opoClosed)} µs |`,
    `| Keel open-state rejection, total per call (median; target ≤ 5 µs) | ${fmt(keelReject)} µs |`,
    `| Keel rejection minus a bare Effect.fail | ${fmt(keelRejectNet)} µs |`,
    `| cockatiel open-state rejection (median) | ${fmt(get("cockatiel open: rejection").median)} µs |`,
    `| opossum open-state rejection (median) | ${fmt(get("opossum open: rejection").median)} µs |`,
    `| ratio: cockatiel overhead / Keel overhead (promise op) | ${(cockClosed / keelClosedAsync).toFixed(2)}× |`,
    `| ratio: opossum overhead / Keel overhead (promise op) | ${(opoClosed / keelClosedAsync).toFixed(2)}× |`,
    `| ratio: cockatiel rejection / Keel rejection | ${(get("cockatiel open: rejection").median / keelReject).toFixed(2)}× |`,
    `| ratio: opossum rejection / Keel rejection | ${(get("opossum open: rejection").median / keelReject).toFixed(2)}× |`
  ].join("\n")
  const hung = [
    `| hung server (each call times out after ${HUNG_TIMEOUT_MS} ms; breaker opens after 3) | ms |`,
    "|---|---:|",
    ...hungTimes.map((t, i) => `| call ${i + 1}${i >= 3 ? " (rejected by the open breaker)" : ""} | ${t.toFixed(3)} |`)
  ].join("\n")
  const output = `${table}\n\n${derived}\n\n${hung}\n`
  console.log(output)

  if (process.argv.includes("--write")) {
    const sh = (cmd: string) => {
      try {
        return execSync(cmd, { encoding: "utf8" }).trim()
      } catch {
        return "(unavailable)"
      }
    }
    const cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").trim()
    const md = `# Circuit breaker benchmark

Produced by \`node bench/circuit-breaker.bench.ts --write\` on ${new Date().toISOString()}. Every number below
was measured in that one run.

Machine: \`nproc\` = ${sh("nproc")}, CPU ${cpu}, Node ${process.version}, ${os.platform()} ${os.release()}.
Load average at the end of the run: ${os.loadavg().map((l) => l.toFixed(2)).join(", ")} (the machine is shared with
other work, so absolute figures carry noise; all cases ran interleaved in the same process).

Method: each case runs ${BATCH} operations back to back in one loop; one sample = batch time / ${BATCH}.
${SAMPLES} samples per case after ${WARMUP} warm-up batches; the cases are interleaved over 3 rounds and each
case keeps its best round (by median). "Sync op" is \`Effect.succeed(1)\`; the cockatiel/opossum rows and the
"Effect.promise" rows wrap \`() => Promise.resolve(1)\` (awaited per call). opossum runs with its defaults
(a 10 s timeout timer per call and rolling statistics). The rejection rows include building the error
(Keel: a \`CircuitOpenError\` with server and next probe time).

${table}

${derived}

${hung}
`
    writeFileSync(new URL("./RESULTS-circuit-breaker.md", import.meta.url), md)
    console.log("wrote bench/RESULTS-circuit-breaker.md")
  }

  opossum.shutdown()
  opossumOpen.shutdown()
  opossumOpenNoFallback.shutdown()
  await Effect.runPromise(Scope.close(scope, Exit.void))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
