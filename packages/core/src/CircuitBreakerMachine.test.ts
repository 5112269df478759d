/**
 * The pure transition on its own: random settings and random event sequences (no Effect, no clock). Each
 * step must leave its input untouched, report a chain of transitions that leads from the old state to the
 * new one (one generation each), and keep the invariants the shell relies on.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as M from "./CircuitBreakerMachine.ts"

const settingsArb: fc.Arbitrary<M.Settings> = fc
  .record({
    windowType: fc.constantFrom("count" as const, "time" as const),
    windowSize: fc.integer({ min: 1, max: 6 }),
    minimumCalls: fc.integer({ min: 1, max: 6 }),
    consecutiveFailureThreshold: fc.integer({ min: 0, max: 4 }),
    failureRateThreshold: fc.constantFrom(0.25, 0.5, 1),
    slowCallRateThreshold: fc.constantFrom(0.5, 1),
    slowCallMillis: fc.constantFrom(500, 1000),
    permittedCallsInHalfOpen: fc.integer({ min: 1, max: 3 }),
    successFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    halfOpenMaxWaitMillis: fc.integer({ min: 1, max: 20_000 }),
    waitMillis: fc.integer({ min: 1, max: 10_000 })
  })
  .map(({ successFraction, ...s }) => ({
    ...s,
    minimumCalls: s.windowType === "count" ? Math.min(s.minimumCalls, s.windowSize) : s.minimumCalls,
    successThresholdToClose: Math.max(1, Math.ceil(successFraction * s.permittedCallsInHalfOpen)),
    slowProbeLimit: Math.max(1, Math.ceil(s.slowCallRateThreshold * s.permittedCallsInHalfOpen))
  }))

type Step = { readonly event: M.Event | "CompleteLast"; readonly advance: number }

const eventArb: fc.Arbitrary<Step> = fc.record({
  advance: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 15_000 })),
  event: fc.oneof(
    { weight: 4, arbitrary: fc.constant({ _tag: "Acquire" } as const) },
    { weight: 4, arbitrary: fc.constant("CompleteLast" as const) },
    {
      weight: 3,
      arbitrary: fc.record({
        _tag: fc.constant("Complete" as const),
        generation: fc.integer({ min: 0, max: 6 }),
        verdict: fc.constantFrom<M.Verdict>("success", "failure", "ignore"),
        durationMillis: fc.integer({ min: 0, max: 2000 })
      })
    },
    { weight: 1, arbitrary: fc.constant({ _tag: "Tick" } as const) },
    {
      weight: 1,
      arbitrary: fc.record({
        _tag: fc.constant("Manual" as const),
        to: fc.constantFrom<M.CircuitState>("Closed", "ForcedOpen", "Disabled", "MetricsOnly")
      })
    },
    {
      weight: 1,
      arbitrary: fc.record({
        _tag: fc.constant("NextWait" as const),
        openings: fc.integer({ min: 0, max: 4 }),
        millis: fc.integer({ min: 1, max: 50_000 })
      })
    }
  )
})

const deepFreeze = <A>(a: A): A => {
  if (typeof a === "object" && a !== null && !Object.isFrozen(a)) {
    Object.freeze(a)
    for (const v of Object.values(a)) deepFreeze(v)
  }
  return a
}

const recount = (settings: M.Settings, w: M.Window) => {
  if (settings.windowType === "count") {
    const filled = w.slots.filter((x) => x !== 0)
    return {
      calls: filled.length,
      failures: filled.filter((x) => x & 2).length,
      slow: filled.filter((x) => x & 4).length
    }
  }
  let calls = 0, failures = 0, slow = 0
  for (let i = 0; i < w.slots.length; i += 3) {
    calls += w.slots[i]!
    failures += w.slots[i + 1]!
    slow += w.slots[i + 2]!
  }
  return { calls, failures, slow }
}

describe("CircuitBreakerMachine.transition", () => {
  it("is pure, reports the transitions it makes, and keeps its invariants (fast-check)", () => {
    fc.assert(
      fc.property(settingsArb, fc.array(eventArb, { minLength: 1, maxLength: 120 }), (settings, steps) => {
        let now = 1_000_000
        let s = deepFreeze(M.initial(settings, now))
        let lastAdmitted = 0
        for (const step of steps) {
          now += step.advance
          const event: M.Event = step.event === "CompleteLast"
            ? { _tag: "Complete", generation: lastAdmitted, verdict: "failure", durationMillis: 0 }
            : step.event
          const before = JSON.stringify(s)
          // frozen input: a mutation would throw in strict mode, and the snapshot must not change
          const [out, next] = M.transition(settings, s, event, now)
          assert.strictEqual(JSON.stringify(s), before)
          // the transitions chain from the old state to the new one, one generation each
          assert.strictEqual(next.generation - s.generation, out.transitions.length)
          let at = s.state
          for (const t of out.transitions) {
            assert.strictEqual(t.from, at)
            assert.isAtMost(t.at, now)
            at = t.to
          }
          assert.strictEqual(at, next.state)
          assert.strictEqual(out.deadline, next.deadline)
          if (event._tag === "Acquire") {
            if (out.decision >= 0) {
              lastAdmitted = out.decision
              assert.strictEqual(out.decision, next.generation)
              assert.include(["Closed", "MetricsOnly", "HalfOpen"], next.state)
            } else if (out.decision === M.REJECTED) {
              assert.include(["Open", "HalfOpen", "ForcedOpen"], next.state)
              assert.strictEqual(next.counters.rejected, s.counters.rejected + 1)
            } else {
              assert.strictEqual(next.state, "Disabled")
            }
          }
          // invariants
          assert.isAtMost(next.probes, settings.permittedCallsInHalfOpen)
          assert.isAtLeast(next.probes, 0)
          assert.deepStrictEqual(recount(settings, next.window), {
            calls: next.window.calls,
            failures: next.window.failures,
            slow: next.window.slow
          })
          if (settings.windowType === "count") assert.isAtMost(next.window.calls, settings.windowSize)
          if (next.state === "Open") {
            assert.isAbove(next.deadline, now === next.since ? next.since - 1 : -Infinity)
            assert.isAtLeast(next.openings, 1)
          } else if (next.state !== "HalfOpen") {
            assert.strictEqual(next.deadline, Infinity)
          }
          if (next.state === "Closed") assert.isTrue(next.openings === 0 || out.transitions.length === 0)
          // no timed transition is left due after a step that applies them
          if (event._tag !== "NextWait") assert.isBelow(now, next.deadline)
          s = deepFreeze(next)
        }
      }),
      { numRuns: 500 }
    )
  })

  it("HalfOpen admits exactly permittedCallsInHalfOpen probes, however many ask (fast-check)", () => {
    fc.assert(
      fc.property(settingsArb, fc.integer({ min: 1, max: 50 }), (settings, askers) => {
        const opened = M.transition(
          { ...settings, consecutiveFailureThreshold: 1 },
          M.initial(settings, 0),
          { _tag: "Complete", generation: 0, verdict: "failure", durationMillis: 0 },
          0
        )[1]
        assert.strictEqual(opened.state, "Open")
        let s = opened
        let admitted = 0
        for (let i = 0; i < askers; i++) {
          const [out, next] = M.acquire(settings, s, opened.deadline)
          if (out.decision >= 0) admitted++
          s = next
        }
        assert.strictEqual(admitted, Math.min(askers, settings.permittedCallsInHalfOpen))
        assert.strictEqual(s.state, "HalfOpen")
        assert.strictEqual(s.deadline, opened.deadline + settings.halfOpenMaxWaitMillis)
      }),
      { numRuns: 200 }
    )
  })

  it("an opening waits nextWait; NextWait applies only to the opening count it was computed for", () => {
    const settings: M.Settings = {
      windowType: "count", windowSize: 5, minimumCalls: 5, consecutiveFailureThreshold: 1,
      failureRateThreshold: 1, slowCallRateThreshold: 1, slowCallMillis: 1000, permittedCallsInHalfOpen: 1,
      successThresholdToClose: 1, slowProbeLimit: 1, halfOpenMaxWaitMillis: 1000, waitMillis: 100
    }
    let s = M.setNextWait(M.initial(settings, 0), 0, 250)[1]
    s = M.complete(settings, s, 0, "failure", 0, 10)[1]
    assert.strictEqual(s.deadline, 260)
    assert.strictEqual(M.setNextWait(s, 0, 999)[1].nextWait, 250) // stale: computed before this opening
    assert.strictEqual(M.setNextWait(s, 1, 500)[1].nextWait, 500)
  })
})
