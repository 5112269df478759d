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
})
