/**
 * Circuit breaker (tutorial 4, Part 3 and Exercise 3) on the embedded demo server's `flaky` tool, which
 * fails its first 5 calls and then succeeds. Everything printed is measured on this run:
 *
 * - 5 failures in a row open the breaker; each state change prints the moment it happens (`onStateChange`);
 * - while open, calls are rejected with a typed `CircuitOpenError` without reaching the server (the
 *   server's own call count proves it), and the rejection time is compared with a failing round trip;
 * - after the 500 ms wait the breaker turns HalfOpen by itself (no call needed), 2 successful probes close it;
 * - the stats at the end (the seed's `GetMetrics()`).
 *
 * Run: `npm run example -- 03`.
 */
import { NodeRuntime } from "@effect/platform-node"
import * as CircuitBreaker from "@keel/core/CircuitBreaker"
import { McpClient, type McpConnection } from "@keel/core/McpClient"
import { demoStdio } from "@keel/demo-server"
import { Console, Deferred, Effect } from "effect"

const REJECTED_RUNS = process.env.KEEL_EXAMPLE_SMOKE === "1" ? 200 : 1000

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}
const fmtMs = (ms: number): string => (ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(1)} µs`)

/** How many `flaky` calls the demo server process actually received (its `stats` tool). */
const flakyCallsServed = (c: McpConnection) =>
  Effect.map(c.callTool("stats"), (r) => {
    const first = r.content[0]
    return (JSON.parse(first?.type === "text" ? first.text : "{}") as { calls: Record<string, number> }).calls["flaky"] ?? 0
  })

// Seed config names → Keel config keys (`CircuitBreaker.make(server, config)`):
//   FailureThreshold     = 5    → consecutiveFailureThreshold  (counted failures in a row that open)
//   FailureRateThreshold = 0.5  → failureRateThreshold         (over a sliding window of slidingWindowSize calls,
//                                                               judged once it holds minimumNumberOfCalls)
//   Timeout              = 10 s → waitDurationInOpen           (+ waitDurationInOpenBackoff: "fixed" | "exponential")
//   MaxHalfOpenRequests  = 3    → permittedCallsInHalfOpen
//   SuccessThreshold     = 2    → successThresholdToClose      (must be ≤ permittedCallsInHalfOpen)
// Short values here, so the whole cycle takes about a second.
const config: CircuitBreaker.CircuitBreakerConfigInput = {
  consecutiveFailureThreshold: 5,
  failureRateThreshold: 0.5,
  waitDurationInOpen: "500 millis",
  waitDurationInOpenBackoff: "fixed",
  permittedCallsInHalfOpen: 2,
  successThresholdToClose: 2
}

const program = Effect.gen(function*() {
  const client = yield* McpClient.connect("demo", { type: "stdio", ...demoStdio() })
  const breaker = yield* CircuitBreaker.make("demo", config)
  const t0 = Date.now()
  yield* Console.log(`connected to ${client.serverInfo.name} (pid ${client.pid}); breaker state: ${yield* breaker.state}`)

  // The seed's OnStateChange: a handler run for each transition, in a fiber tied to this scope.
  const halfOpen = yield* Deferred.make<CircuitBreaker.StateTransition>()
  yield* breaker.onStateChange((t) =>
    Effect.gen(function*() {
      yield* Console.log(`  ⚡ breaker ${t.server}: ${t.from} → ${t.to} (${t.reason}) at +${t.at - t0} ms`)
      if (t.to === "Open") yield* Console.log("     (here you would page the on-call engineer)")
      if (t.to === "HalfOpen") yield* Deferred.succeed(halfOpen, t)
    })
  )

  // `flaky` fails its first 5 calls with a JSON-RPC error (McpProtocolError), then succeeds.
  const flaky = breaker.execute(client.callTool("flaky", { key: "example-03", failFirst: 5 }))
  /** Runs one call through the breaker, prints its outcome and lets the transition listener print. */
  const attempt = (label: string) =>
    Effect.gen(function*() {
      const start = performance.now()
      const outcome = yield* flaky.pipe(
        Effect.map((r) => `ok "${r.content[0]?.type === "text" ? r.content[0].text : "?"}"`),
        Effect.catchTag("McpProtocolError", (e) => Effect.succeed(`${e._tag} ${e.code}: ${e.message}`)),
        Effect.catchTag("CircuitOpenError", (e) => Effect.succeed(`${e._tag} (${e.state})`))
      )
      const ms = performance.now() - start
      yield* Console.log(`  ${label}: ${outcome} in ${fmtMs(ms)}; state now ${yield* breaker.state}`)
      yield* Effect.yieldNow
      return ms
    })

  yield* Console.log("\nA healthy call through the breaker:")
  const echo = yield* breaker.execute(client.callTool("echo", { message: "hello" }))
  yield* Console.log(`  echo -> ${echo.content[0]?.type === "text" ? echo.content[0].text : "?"}; state ${yield* breaker.state}`)

  yield* Console.log("\nFailures (consecutiveFailureThreshold = 5):")
  const failing: Array<number> = []
  for (let i = 1; i <= 5; i++) failing.push(yield* attempt(`attempt ${i}`))
  const open = yield* breaker.stats
  yield* Console.log(
    `  stats while open: window ${open.windowCalls} calls, failure rate ${(open.failureRate * 100).toFixed(0)}%, ` +
      `consecutive failures ${open.consecutiveFailures}, openings since the last close ${open.openings}`
  )

  yield* Console.log(`\nWhile open: ${REJECTED_RUNS} calls, rejected without reaching the server:`)
  yield* attempt("attempt 6")
  const rejected: Array<number> = []
  for (let i = 0; i < REJECTED_RUNS; i++) {
    const start = performance.now()
    const error = yield* Effect.flip(flaky)
    rejected.push(performance.now() - start)
    if (error._tag !== "CircuitOpenError") return yield* Effect.die(`expected a rejection, got ${error._tag}`)
  }
  const served = yield* flakyCallsServed(client)
  const failMedian = median(failing)
  const rejectMedian = median(rejected)
  yield* Console.log(`  failing round trip (median of ${failing.length}): ${fmtMs(failMedian)}`)
  yield* Console.log(`  rejection         (median of ${rejected.length}): ${fmtMs(rejectMedian)}`)
  yield* Console.log(`  → a rejection is ${Math.round(failMedian / rejectMedian).toLocaleString("en-US")}x faster than a failing call`)
  yield* Console.log(`  flaky calls the server received: ${served} (the ${REJECTED_RUNS + 1} rejected calls never left the client)`)
  const { nextProbeAt } = yield* breaker.stats
  if (nextProbeAt !== undefined) yield* Console.log(`  next probe allowed at +${nextProbeAt - t0} ms`)

  yield* Console.log("\nWaiting for the 500 ms wait to end (no calls are made)...")
  const toHalfOpen = yield* Deferred.await(halfOpen).pipe(Effect.timeout("10 seconds"))
  const stateNow = yield* breaker.state
  yield* Console.log(`  state after the wait: ${stateNow}, reached at +${toHalfOpen.at - t0} ms`)

  yield* Console.log("\nProbes (permittedCallsInHalfOpen = 2, successThresholdToClose = 2):")
  yield* attempt("probe 1")
  yield* attempt("probe 2")
  yield* Effect.yieldNow

  const s = yield* breaker.stats
  yield* Console.log("\nStats:")
  yield* Console.log(`  state ${s.state}; calls run ${s.totalCalls} (successful ${s.successfulCalls}, failed ${s.failedCalls}, ignored ${s.ignoredCalls}); rejected ${s.rejectedCalls}`)
  yield* Console.log(`  window: ${s.windowCalls} calls, failure rate ${(s.failureRate * 100).toFixed(1)}%; consecutive failures ${s.consecutiveFailures}; openings since the last close ${s.openings} (0: it closed)`)
  yield* Console.log(`  flaky calls the server received in total: ${yield* flakyCallsServed(client)}`)
})

// A failure (the demo server not starting, an unexpected McpError) is reported by runMain with exit code 1.
NodeRuntime.runMain(Effect.scoped(program))
