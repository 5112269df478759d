/**
 * Tests that pin `CircuitBreakerMachine.ts` for mutation testing (`npm run mutation`, see MUTATION.md).
 * The sliding windows against a naive reference: every recorded outcome kept in a list, the window's
 * counts recomputed from the list at each step (count window: the last `windowSize` outcomes; time window:
 * the outcomes of the last `windowSize` whole seconds).
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as M from "./CircuitBreakerMachine.ts"

const settings = (windowType: "count" | "time", windowSize: number): M.Settings => ({
  windowType,
  windowSize,
  minimumCalls: 1,
  consecutiveFailureThreshold: 0,
  failureRateThreshold: 1,
  slowCallRateThreshold: 1,
  slowCallMillis: 1_000,
  permittedCallsInHalfOpen: 1,
  successThresholdToClose: 1,
  slowProbeLimit: 1,
  halfOpenMaxWaitMillis: 1_000,
  waitMillis: 1_000
})

type Rec = { readonly advance: number; readonly failure: boolean; readonly slow: boolean; readonly read: boolean }
const recArb: fc.Arbitrary<Rec> = fc.record({
  advance: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 1_500 }), fc.integer({ min: 0, max: 8_000 })),
  failure: fc.boolean(),
  slow: fc.boolean(),
  read: fc.boolean()
})

const counts = (events: ReadonlyArray<{ failure: boolean; slow: boolean }>) => ({
  calls: events.length,
  failures: events.filter((e) => e.failure).length,
  slow: events.filter((e) => e.slow).length
})

describe("CircuitBreakerMachine windows (mutation pins)", () => {
  for (const windowType of ["count", "time"] as const) {
    it(`${windowType} window: calls, failures and slow calls match a naive recount after every step (fast-check)`, () =>
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 5_000 }), fc.array(recArb, { maxLength: 60 }), (size, start, recs) => {
          const st = settings(windowType, size)
          let w = M.emptyWindow(st)
          let now = start
          const log: Array<{ at: number; failure: boolean; slow: boolean }> = []
          for (const r of recs) {
            now += r.advance
            const second = Math.floor(now / 1000)
            const expected = (events: typeof log) =>
              counts(windowType === "count" ? events.slice(-size) : events.filter((e) => e.at > second - size))
            if (r.read) {
              const seen = M.refreshWindow(st, w, now)
              const e = expected(log)
              if (seen.calls !== e.calls || seen.failures !== e.failures || seen.slow !== e.slow) return false
            }
            w = M.recordWindow(st, w, r.failure, r.slow, now)
            log.push({ at: second, failure: r.failure, slow: r.slow })
            const e = expected(log)
            if (w.calls !== e.calls || w.failures !== e.failures || w.slow !== e.slow) return false
          }
          return true
        }),
        { numRuns: 300 }
      ))
  }

  it("a completion's slowness: strictly over slowCallMillis, and never for an ignored outcome", () => {
    const st = { ...settings("count", 10), minimumCalls: 100 }
    const s = M.initial(st, 0)
    const [a, s1] = M.acquire(st, s, 0)
    assert.strictEqual(M.complete(st, s1, a.decision, "success", 1_000, 1_000)[1].counters.slow, 0)
    assert.strictEqual(M.complete(st, s1, a.decision, "success", 1_001, 1_001)[1].counters.slow, 1)
    assert.strictEqual(M.complete(st, s1, a.decision, "ignore", 5_000, 5_000)[1].counters.slow, 0)
    assert.strictEqual(M.complete(st, s1, a.decision, "ignore", 5_000, 5_000)[1].counters.ignored, 1)
    assert.strictEqual(M.complete(st, s1, a.decision, "failure", 5_000, 5_000)[1].counters.ignored, 0)
  })

  it("a success from an earlier generation does not count in the new Closed generation's window", () => {
    const st = { ...settings("count", 10), minimumCalls: 100 }
    const s0 = M.initial(st, 0)
    const [old, s1] = M.acquire(st, s0, 0)
    const [, opened] = M.manual(st, s1, "Open", 10)
    const [, closed] = M.manual(st, opened, "Closed", 20)
    const [, after] = M.complete(st, closed, old.decision, "success", 5, 30)
    assert.strictEqual(after.window.calls, 0)
    assert.strictEqual(after.counters.successful, 1) // the lifetime counters still see it
  })

  it("HalfOpen: the max wait starts at the first probe; later probes do not push it", () => {
    const st = { ...settings("count", 10), permittedCallsInHalfOpen: 3, successThresholdToClose: 3, halfOpenMaxWaitMillis: 1_000 }
    const [, half] = M.manual(st, M.initial(st, 0), "HalfOpen", 0)
    assert.strictEqual(half.deadline, Infinity)
    const [, p1] = M.acquire(st, half, 100)
    assert.strictEqual(p1.deadline, 1_100)
    const [, p2] = M.acquire(st, p1, 600)
    assert.strictEqual(p2.deadline, 1_100)
  })

  it("HalfOpen: a probe slot given back (ignored) does not restart the max wait for the next probe", () => {
    const st = { ...settings("count", 10), permittedCallsInHalfOpen: 1, successThresholdToClose: 1, halfOpenMaxWaitMillis: 1_000 }
    const [, half] = M.manual(st, M.initial(st, 0), "HalfOpen", 0)
    const [p1, h1] = M.acquire(st, half, 100)
    assert.strictEqual(h1.deadline, 1_100)
    const [, back] = M.complete(st, h1, p1.decision, "ignore", 50, 150)
    assert.strictEqual(back.probes, 0)
    const [p2, h2] = M.acquire(st, back, 600)
    assert.strictEqual(p2.decision, back.generation) // admitted again
    assert.strictEqual(h2.deadline, 1_100)
  })

  it("probe outcomes: reasons, the slow-probe limit boundary, slow successes below it are counted", () => {
    const st = { ...settings("count", 10), permittedCallsInHalfOpen: 3, successThresholdToClose: 3, slowProbeLimit: 2, halfOpenMaxWaitMillis: 100_000 }
    const [, half] = M.manual(st, M.initial(st, 0), "HalfOpen", 0)
    const [a, h1] = M.acquire(st, half, 0)
    const [out1, slow1] = M.complete(st, h1, a.decision, "success", 5_000, 5_000) // slow probe 1 of limit 2
    assert.strictEqual(slow1.state, "HalfOpen")
    assert.strictEqual(slow1.slowProbes, 1)
    assert.deepStrictEqual(out1.transitions, [])
    const [b, h2] = M.acquire(st, slow1, 5_000)
    const [out2, open] = M.complete(st, h2, b.decision, "success", 5_000, 10_000) // slow probe 2: opens
    assert.strictEqual(open.state, "Open")
    assert.strictEqual(out2.transitions.at(-1)?.reason, "SlowProbes")
    const [c, h3] = M.acquire(st, half, 0)
    const [out3] = M.complete(st, h3, c.decision, "failure", 1, 1)
    assert.strictEqual(out3.transitions.at(-1)?.reason, "ProbeFailed")
    const [out4, manualOpen] = M.transition(st, half, { _tag: "Manual", to: "Open" }, 7)
    assert.deepStrictEqual(out4.transitions, [{ from: "HalfOpen", to: "Open", at: 7, reason: "Manual" }])
    assert.strictEqual(manualOpen.state, "Open")
  })

  it("closing resets the next opening's wait to waitMillis", () => {
    const st = { ...settings("count", 10), waitMillis: 1_000 }
    const [, opened] = M.manual(st, M.initial(st, 0), "Open", 0)
    const [, longer] = M.setNextWait(opened, opened.openings, 8_000)
    assert.strictEqual(longer.nextWait, 8_000)
    const [, closed] = M.manual(st, longer, "Closed", 10)
    assert.strictEqual(closed.nextWait, 1_000)
  })

  it("the opening rates: failure rate and slow-call rate each open at their threshold, not below", () => {
    const st = { ...settings("count", 4), minimumCalls: 4, failureRateThreshold: 0.5, slowCallRateThreshold: 0.75 }
    const run = (outcomes: ReadonlyArray<readonly ["success" | "failure", number]>) => {
      let s = M.initial(st, 0)
      let t = 0
      const reasons: Array<string> = []
      for (const [verdict, ms] of outcomes) {
        const [a, s1] = M.acquire(st, s, t)
        t += ms
        const [out, s2] = M.complete(st, s1, a.decision, verdict, ms, t)
        reasons.push(...out.transitions.map((x) => x.reason))
        s = s2
      }
      return reasons
    }
    assert.deepStrictEqual(run([["failure", 1], ["success", 1], ["success", 1], ["success", 1]]), []) // 1/4 < 0.5
    assert.deepStrictEqual(run([["failure", 1], ["failure", 1], ["success", 1], ["success", 1]]), ["FailureRate"]) // 2/4
    assert.deepStrictEqual(run([["success", 2_000], ["success", 2_000], ["success", 1], ["success", 1]]), []) // 2/4 slow
    assert.deepStrictEqual(run([["success", 2_000], ["success", 2_000], ["success", 2_000], ["success", 1]]), ["SlowCallRate"])
  })
})
