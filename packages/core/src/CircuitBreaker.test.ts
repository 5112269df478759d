import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Metric, PubSub, Random, Schedule } from "effect"
import { TestClock } from "effect/testing"
import * as CB from "./CircuitBreaker.ts"
import { McpClosedError, McpConnectError, McpProtocolError, McpTimeoutError, McpToolError } from "./McpError.ts"

const timeoutError = () =>
  new McpTimeoutError({ server: "s", method: "tools/call", timeoutMs: 1000, message: "timed out" })
const toolError = (text = "tool failed") =>
  new McpToolError({ server: "s", tool: "t", text, content: [], message: text })

const fail = Effect.fail(timeoutError())
const ok = Effect.succeed("ok")

/** Config with rates effectively out of the way, so tests can target one rule at a time. */
const base: CB.CircuitBreakerConfigInput = {
  consecutiveFailureThreshold: 3,
  failureRateThreshold: 1,
  slidingWindowSize: 10,
  minimumNumberOfCalls: 10,
  slowCallDuration: "1 second",
  slowCallRateThreshold: 1,
  waitDurationInOpen: "10 seconds",
  waitDurationInOpenBackoff: "fixed",
  permittedCallsInHalfOpen: 3,
  successThresholdToClose: 2,
  maxWaitDurationInHalfOpen: "30 seconds"
}

const run = <A, E, R>(breaker: CB.Breaker, self: Effect.Effect<A, E, R>) => Effect.exit(breaker.execute(self))

const failTimes = (breaker: CB.Breaker, n: number) =>
  Effect.repeat(run(breaker, fail), { times: n - 1 })

const isRejected = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) && Exit.findErrorOption(exit)._tag === "Some" &&
  (Exit.findErrorOption(exit) as any).value._tag === "CircuitOpenError"

/** Drains the events a subscription has buffered. */
const drain = (sub: PubSub.Subscription<CB.CircuitBreakerEvent>) =>
  Effect.map(PubSub.takeUpTo(sub, 1000), (chunk) => Array.from(chunk))
const transitions = (sub: PubSub.Subscription<CB.CircuitBreakerEvent>) =>
  Effect.map(
    drain(sub),
    (events) =>
      events.filter((e): e is CB.StateTransition => e._tag === "StateTransition").map((t) =>
        `${t.from}->${t.to}:${t.reason}`
      )
  )

describe("CircuitBreaker config", () => {
  it("defaults map the seed's names", () => {
    const c = CB.defaultConfig
    assert.strictEqual(c.consecutiveFailureThreshold, 5) // FailureThreshold
    assert.strictEqual(c.failureRateThreshold, 0.5) // FailureRateThreshold
    assert.strictEqual(Duration.toMillis(c.waitDurationInOpen), 10_000) // Timeout
    assert.strictEqual(c.permittedCallsInHalfOpen, 3) // MaxHalfOpenRequests
    assert.strictEqual(c.successThresholdToClose, 2) // SuccessThreshold
    assert.strictEqual(c.countToolErrors, false)
  })

  it.effect("rejects invalid values with McpConfigError naming the field (never a throw)", () =>
    Effect.gen(function*() {
      const path = (input: CB.CircuitBreakerConfigInput) =>
        Effect.map(Effect.flip(CB.resolveConfig(input)), (e) => `${e._tag} ${e.path}`)
      assert.strictEqual(yield* path({ failureRateThreshold: 1.5 }), "McpConfigError breaker.failureRateThreshold")
      assert.strictEqual(
        yield* path({ consecutiveFailureThreshold: -1 }),
        "McpConfigError breaker.consecutiveFailureThreshold"
      )
      assert.strictEqual(
        yield* path({ permittedCallsInHalfOpen: 1, successThresholdToClose: 2 }),
        "McpConfigError breaker.successThresholdToClose"
      )
      assert.strictEqual(
        yield* path({ maxWaitDurationInHalfOpen: 0 }),
        "McpConfigError breaker.maxWaitDurationInHalfOpen"
      )
      assert.strictEqual(
        yield* path({ slowCallDuration: "soon" as Duration.Input }),
        "McpConfigError breaker.slowCallDuration"
      )
      const config = yield* CB.resolveConfig({ waitDurationInOpen: "2 seconds" })
      assert.strictEqual(Duration.toMillis(config.waitDurationInOpen), 2000)
      // make fails the same way, with the path under "breaker"
      const error = yield* Effect.flip(CB.make("srv", { slidingWindowSize: 0 }))
      assert.strictEqual(error.path, "breaker.slidingWindowSize")
      // a decoded config is a valid input
      assert.deepStrictEqual(yield* CB.resolveConfig(config), config)
    }))
})

describe("CircuitBreaker transitions", () => {
  it.effect("Closed -> Open after consecutive failures; Open rejects with a typed error", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", base)
      const sub = yield* breaker.subscribe
      yield* failTimes(breaker, 2)
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* run(breaker, fail)
      assert.strictEqual(yield* breaker.state, "Open")
      const rejected = yield* Effect.flip(breaker.execute(ok))
      assert.strictEqual(rejected._tag, "CircuitOpenError")
      assert.strictEqual(rejected.server, "srv")
      assert.strictEqual(rejected.state, "Open")
      assert.strictEqual(rejected.nextProbeAt, 10_000)
      assert.deepStrictEqual(yield* transitions(sub), ["Closed->Open:ConsecutiveFailures"])
    }))

  it.effect("a success resets the consecutive count", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", base)
      yield* failTimes(breaker, 2)
      yield* run(breaker, ok)
      yield* failTimes(breaker, 2)
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual((yield* breaker.stats).consecutiveFailures, 2)
    }))

  it.effect("Open -> HalfOpen when the wait ends, with no traffic (state and event)", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", base)
      const sub = yield* breaker.subscribe
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("9999 millis")
      assert.strictEqual(yield* breaker.state, "Open")
      yield* TestClock.adjust("1 millis")
      // the timer fiber published the transition without any call or read
      assert.deepStrictEqual(yield* transitions(sub), ["Closed->Open:ConsecutiveFailures", "Open->HalfOpen:WaitElapsed"])
      assert.strictEqual(yield* breaker.state, "HalfOpen")
    }))

  it.effect("HalfOpen -> Closed after successThresholdToClose successful probes", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", base)
      const sub = yield* breaker.subscribe
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("10 seconds")
      yield* run(breaker, ok)
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      yield* run(breaker, ok)
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.deepStrictEqual(yield* transitions(sub), [
        "Closed->Open:ConsecutiveFailures",
        "Open->HalfOpen:WaitElapsed",
        "HalfOpen->Closed:ProbesSucceeded"
      ])
      // the window was cleared: it takes a full streak to open again
      yield* failTimes(breaker, 2)
      assert.strictEqual(yield* breaker.state, "Closed")
    }))

  it.effect("HalfOpen -> Open on a failed probe", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", base)
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("10 seconds")
      yield* run(breaker, ok)
      yield* run(breaker, fail)
      const status = yield* breaker.status
      assert.strictEqual(status.state, "Open")
      assert.strictEqual(status.openings, 2)
    }))

  it.effect("HalfOpen admits exactly permittedCallsInHalfOpen probes (seed defect: lifetime counters)", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", { ...base, permittedCallsInHalfOpen: 3, successThresholdToClose: 3 })
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("10 seconds")
      const gate = yield* Deferred.make<void>()
      const fibers = yield* Effect.forEach(
        Array.from({ length: 5 }),
        () => Effect.forkChild(run(breaker, Deferred.await(gate)))
      )
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      const exits = yield* Fiber.joinAll(fibers)
      assert.strictEqual(exits.filter(Exit.isSuccess).length, 3)
      assert.strictEqual(exits.filter(isRejected).length, 2)
      assert.strictEqual(yield* breaker.state, "Closed")
      // the next cycle admits probes again (the seed rejected everything after one probe)
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("10 seconds")
      assert.isTrue(Exit.isSuccess(yield* run(breaker, ok)))
      assert.isTrue(Exit.isSuccess(yield* run(breaker, ok)))
    }))

  it.effect("no traffic: the breaker waits half-open (its wait does not grow), and the first call is a probe", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", base)
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("30 minutes")
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      assert.strictEqual((yield* breaker.stats).openings, 1)
      assert.isTrue(Exit.isSuccess(yield* run(breaker, ok)))
    }))

  it.effect("pool errors are Keel's own saturation, not the server's: they never count", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", { ...base, consecutiveFailureThreshold: 2 })
      for (const _tag of ["PoolTimeoutError", "PoolClosedError"]) {
        yield* Effect.exit(breaker.execute(Effect.fail({ _tag })))
        yield* Effect.exit(breaker.execute(Effect.fail({ _tag })))
      }
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual((yield* breaker.stats).failedCalls, 0)
    }))

  it.effect("HalfOpen max wait: a hung probe cannot keep the breaker half-open", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", base)
      const sub = yield* breaker.subscribe
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("10 seconds")
      const hung = yield* Effect.forkChild(run(breaker, Effect.never))
      yield* Effect.yieldNow
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(yield* breaker.state, "Open")
      assert.deepStrictEqual((yield* transitions(sub)).slice(1), [
        "Open->HalfOpen:WaitElapsed",
        "HalfOpen->Open:HalfOpenMaxWait"
      ])
      yield* Fiber.interrupt(hung)
      // and it probes again after the next wait
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* breaker.state, "HalfOpen")
    }))

  it.effect("Closed -> Open on failure rate over the window, judged only after minimumNumberOfCalls", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", {
        ...base,
        consecutiveFailureThreshold: 0,
        failureRateThreshold: 0.5,
        slidingWindowSize: 10,
        minimumNumberOfCalls: 6
      })
      const sub = yield* breaker.subscribe
      // 4 failures, 1 success: 80% but only 5 calls
      yield* run(breaker, ok)
      yield* failTimes(breaker, 4)
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* run(breaker, ok) // 6 calls, 4 failures: 66%
      assert.strictEqual(yield* breaker.state, "Open")
      assert.deepStrictEqual(yield* transitions(sub), ["Closed->Open:FailureRate"])
    }))

  it.effect("count window slides: old failures fall out (seed defect: lifetime failure rate)", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", {
        ...base,
        consecutiveFailureThreshold: 0,
        failureRateThreshold: 0.5,
        slidingWindowSize: 10,
        minimumNumberOfCalls: 10
      })
      // long healthy history: lifetime rate would stay low for a long time
      yield* Effect.repeat(run(breaker, ok), { times: 99 })
      yield* failTimes(breaker, 4)
      assert.strictEqual(yield* breaker.state, "Closed") // 4 / 10
      yield* run(breaker, fail) // 5 / 10 = 50% -> open, while lifetime is 5 / 105
      assert.strictEqual(yield* breaker.state, "Open")
      const stats = yield* breaker.stats
      assert.strictEqual(stats.windowCalls, 10)
      assert.strictEqual(stats.failureRate, 0.5)
      assert.strictEqual(stats.totalCalls, 105)
    }))

  it.effect("time window forgets calls older than N seconds", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", {
        ...base,
        consecutiveFailureThreshold: 0,
        failureRateThreshold: 0.5,
        slidingWindowType: "time",
        slidingWindowSize: 5,
        minimumNumberOfCalls: 4
      })
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("6 seconds")
      assert.strictEqual((yield* breaker.stats).windowCalls, 0)
      yield* run(breaker, fail) // only 1 call in the window now
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* Effect.repeat(run(breaker, ok), { times: 1 })
      yield* run(breaker, fail) // 2 failures / 4 calls in the last 5 s
      assert.strictEqual(yield* breaker.state, "Open")
    }))

  it.effect("slow calls: Closed -> Open on slow-call rate", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", {
        ...base,
        consecutiveFailureThreshold: 0,
        slowCallDuration: "1 second",
        slowCallRateThreshold: 0.5,
        minimumNumberOfCalls: 4
      })
      const sub = yield* breaker.subscribe
      const slow = TestClock.adjust("2 seconds").pipe(Effect.as("slow"))
      yield* run(breaker, ok)
      yield* run(breaker, ok)
      yield* run(breaker, slow)
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* run(breaker, slow) // 2 slow / 4
      assert.strictEqual(yield* breaker.state, "Open")
      const events = yield* drain(sub)
      assert.strictEqual(events.filter((e) => e._tag === "CallRecorded" && e.slow).length, 2)
      assert.strictEqual(
        events.filter((e): e is CB.StateTransition => e._tag === "StateTransition")[0]?.reason,
        "SlowCallRate"
      )
      assert.strictEqual((yield* breaker.stats).slowCalls, 2)
    }))

  it.effect("backoff: each consecutive reopen waits longer, capped; a close resets it", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", {
        ...base,
        consecutiveFailureThreshold: 1,
        waitDurationInOpen: "1 second",
        waitDurationInOpenBackoff: "exponential",
        waitDurationInOpenMultiplier: 2,
        maxWaitDurationInOpen: "5 seconds"
      })
      const waits: Array<number> = []
      yield* run(breaker, fail)
      for (let i = 0; i < 5; i++) {
        const status = yield* breaker.status
        assert.strictEqual(status.state, "Open")
        waits.push(status.deadline - status.since)
        yield* TestClock.adjust(Duration.millis(status.deadline - status.since))
        assert.strictEqual(yield* breaker.state, "HalfOpen")
        yield* run(breaker, fail) // probe fails: reopen
      }
      assert.deepStrictEqual(waits, [1000, 2000, 4000, 5000, 5000])
      // recover: the next opening starts from the base wait again
      const s = yield* breaker.status
      yield* TestClock.adjust(Duration.millis(s.deadline - s.since))
      yield* run(breaker, ok)
      yield* run(breaker, ok)
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* run(breaker, fail)
      const after = yield* breaker.status
      assert.strictEqual(after.deadline - after.since, 1000)
    }))

  it.effect("jittered backoff stays within [0.8, 1.2] of the exponential wait", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", {
        ...base,
        consecutiveFailureThreshold: 1,
        waitDurationInOpen: "1 second",
        waitDurationInOpenBackoff: "exponential",
        waitDurationInOpenJitter: true,
        maxWaitDurationInOpen: "1 hour"
      })
      yield* run(breaker, fail)
      for (let i = 0; i < 4; i++) {
        const s = yield* breaker.status
        const wait = s.deadline - s.since
        const expected = 1000 * 2 ** i
        assert.isTrue(wait >= expected * 0.8 && wait <= expected * 1.2, `wait ${wait} vs ${expected}`)
        yield* TestClock.adjust(Duration.millis(wait))
        yield* run(breaker, fail)
      }
    }))

  it.effect("jitter is drawn from the Random service: a fixed source gives exact, different waits", () =>
    Effect.gen(function*() {
      const jittered = { ...base, consecutiveFailureThreshold: 1, waitDurationInOpen: "1 second",
        waitDurationInOpenBackoff: "exponential", waitDurationInOpenJitter: true, maxWaitDurationInOpen: "1 hour" } as const
      const fixed = (value: number): Random.Random => ({ nextDoubleUnsafe: () => value, nextIntUnsafe: () => 0 })
      const waitsWith = (random: Random.Random) =>
        Effect.gen(function*() {
          const breaker = yield* CB.make("srv", jittered)
          const waits: Array<number> = []
          yield* run(breaker, fail)
          for (let i = 0; i < 3; i++) {
            const s = yield* breaker.status
            waits.push(s.deadline - s.since)
            yield* TestClock.adjust(Duration.millis(s.deadline - s.since))
            yield* run(breaker, fail)
          }
          return waits
        }).pipe(Effect.provideService(Random.Random, random))
      // factor 0.8 + 0.4 × random: 0 → ×0.8, 0.5 → ×1.0, 0.75 → ×1.1
      assert.deepStrictEqual(yield* waitsWith(fixed(0)), [800, 1600, 3200])
      assert.deepStrictEqual(yield* waitsWith(fixed(0.5)), [1000, 2000, 4000])
      assert.deepStrictEqual(yield* waitsWith(fixed(0.75)), [1100, 2200, 4400])
      // without jitter the Random service is not consulted
      const plain = yield* CB.make("srv", { ...jittered, waitDurationInOpenJitter: false }).pipe(
        Effect.provideService(Random.Random, fixed(0))
      )
      yield* run(plain, fail)
      const s = yield* plain.status
      assert.strictEqual(s.deadline - s.since, 1000)
    }))

  it.effect("a custom Schedule drives the wait", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", { ...base, consecutiveFailureThreshold: 1 }, {
        openSchedule: Schedule.fibonacci("1 second")
      })
      const waits: Array<number> = []
      yield* run(breaker, fail)
      for (let i = 0; i < 4; i++) {
        const s = yield* breaker.status
        waits.push(s.deadline - s.since)
        yield* TestClock.adjust(Duration.millis(s.deadline - s.since))
        yield* run(breaker, fail)
      }
      assert.deepStrictEqual(waits, [1000, 1000, 2000, 3000])
    }))

  it.effect("manual states: isolate (ForcedOpen), disable, metricsOnly, reset", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", base)
      yield* breaker.isolate
      const err = yield* Effect.flip(breaker.execute(ok))
      assert.strictEqual(err.state, "ForcedOpen")
      assert.strictEqual(err.nextProbeAt, undefined)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* breaker.state, "ForcedOpen") // no timer leaves ForcedOpen

      yield* breaker.disable
      yield* failTimes(breaker, 10)
      assert.strictEqual(yield* breaker.state, "Disabled")
      assert.strictEqual((yield* breaker.stats).failedCalls, 0) // nothing recorded

      yield* breaker.metricsOnly
      yield* failTimes(breaker, 10)
      const stats = yield* breaker.stats
      assert.strictEqual(stats.state, "MetricsOnly")
      assert.strictEqual(stats.failedCalls, 10)
      assert.strictEqual(stats.windowFailures, 10)

      yield* breaker.reset
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual((yield* breaker.stats).windowCalls, 0)
    }))

  it.effect("outcome of a call admitted before a transition does not affect the new state", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", base)
      const gate = yield* Deferred.make<void>()
      const late = yield* Effect.forkChild(run(breaker, Effect.andThen(Deferred.await(gate), fail)))
      yield* Effect.yieldNow
      yield* failTimes(breaker, 3) // opens
      yield* TestClock.adjust("10 seconds")
      yield* run(breaker, ok) // one successful probe
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(late) // a Closed-era failure lands in HalfOpen
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      yield* run(breaker, ok)
      assert.strictEqual(yield* breaker.state, "Closed")
    }))
})

describe("CircuitBreaker classification", () => {
  it.effect("interruption never counts (seed defect: cancellation counted as failure)", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", { ...base, consecutiveFailureThreshold: 1 })
      for (let i = 0; i < 5; i++) {
        const fiber = yield* Effect.forkChild(breaker.execute(Effect.never))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(fiber)
      }
      yield* Effect.exit(breaker.execute(Effect.interrupt))
      const stats = yield* breaker.stats
      assert.strictEqual(stats.state, "Closed")
      assert.strictEqual(stats.failedCalls, 0)
      assert.strictEqual(stats.ignoredCalls, 6)
    }))

  it.effect("an interrupted half-open probe gives its slot back", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", { ...base, permittedCallsInHalfOpen: 2 })
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("10 seconds")
      const probes = yield* Effect.forEach([1, 2], () => Effect.forkChild(breaker.execute(Effect.never)))
      yield* Effect.yieldNow
      assert.isTrue(isRejected(yield* run(breaker, ok)))
      yield* Fiber.interruptAll(probes)
      assert.isTrue(Exit.isSuccess(yield* run(breaker, ok)))
      assert.isTrue(Exit.isSuccess(yield* run(breaker, ok)))
      assert.strictEqual(yield* breaker.state, "Closed")
    }))

  it.effect("classifies by _tag, never by message text (seed defect: errors compared as strings)", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", { ...base, consecutiveFailureThreshold: 1 })
      // a tool error whose text mentions every transport error name is still a tool error: ignored
      yield* run(breaker, Effect.fail(toolError("McpTimeoutError McpClosedError connection refused timeout")))
      assert.strictEqual(yield* breaker.state, "Closed")
      // a plain Error whose message looks like a tool error still counts (unknown errors count)
      yield* run(breaker, Effect.fail(new Error("McpToolError")))
      assert.strictEqual(yield* breaker.state, "Open")
    }))

  it.effect("the caller's own mistakes and the client's own limits never count (issue: caller mistakes blamed the server)", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", { ...base, consecutiveFailureThreshold: 1 })
      const mistakes: ReadonlyArray<unknown> = [
        new McpProtocolError({ server: "s", method: "tools/call", code: -32602, message: "Invalid params" }),
        new McpProtocolError({ server: "s", method: "tools/call", code: -32601, message: "Method not found" }),
        { _tag: "InvalidArgumentsError" },
        { _tag: "UnknownToolError" },
        { _tag: "UnknownServerError" },
        { _tag: "McpMessageTooLargeError" }
      ]
      for (const error of mistakes) yield* run(breaker, Effect.fail(error))
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual((yield* breaker.stats).failedCalls, 0)
      // ...while the same class with a server-side code does count.
      yield* run(breaker, Effect.fail(new McpProtocolError({ server: "s", method: "tools/call", code: -32603, message: "x" })))
      assert.strictEqual(yield* breaker.state, "Open")
    }))

  it.effect("every transport error counts; tool errors count only with countToolErrors", () =>
    Effect.gen(function*() {
      const errors = [
        new McpConnectError({ server: "s", message: "x", stderrTail: "" }),
        timeoutError(),
        new McpClosedError({ server: "s", method: "m", message: "x" }),
        new McpProtocolError({ server: "s", method: "m", code: -32603, message: "x" })
      ]
      for (const error of errors) {
        const breaker = yield* CB.make("srv", { ...base, consecutiveFailureThreshold: 1 })
        yield* run(breaker, Effect.fail(error))
        assert.strictEqual(yield* breaker.state, "Open", error._tag)
      }
      const counting = yield* CB.make("srv", { ...base, consecutiveFailureThreshold: 1, countToolErrors: true })
      yield* run(counting, Effect.fail(toolError()))
      assert.strictEqual(yield* counting.state, "Open")
      // defects count too
      const dying = yield* CB.make("srv", { ...base, consecutiveFailureThreshold: 1 })
      yield* run(dying, Effect.die("boom"))
      assert.strictEqual(yield* dying.state, "Open")
    }))

  it.effect("a custom classifier can ignore or accept errors", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", { ...base, consecutiveFailureThreshold: 1 }, {
        classify: (e) => (e instanceof Error && e.message === "benign" ? "success" : undefined)
      })
      yield* run(breaker, Effect.fail(new Error("benign")))
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual((yield* breaker.stats).successfulCalls, 1)
      yield* run(breaker, fail)
      assert.strictEqual(yield* breaker.state, "Open")
    }))
})

describe("CircuitBreaker events, stats, metrics", () => {
  it.effect("onStateChange handlers may use the breaker (seed defect: metrics/state lock-order deadlock)", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", base)
      const seen: Array<string> = []
      const done = yield* Deferred.make<void>()
      yield* breaker.onStateChange((t) =>
        Effect.gen(function*() {
          const stats = yield* breaker.stats
          const state = yield* breaker.state
          yield* Effect.exit(breaker.execute(ok)) // re-entrant call from inside the handler
          seen.push(`${t.from}->${t.to} ${state} failed=${stats.failedCalls}`)
          yield* Deferred.succeed(done, undefined)
        })
      )
      yield* failTimes(breaker, 3)
      yield* Deferred.await(done)
      assert.deepStrictEqual(seen, ["Closed->Open Open failed=3"])
    }))

  it.effect("events: success, failure, slow, rejected; stats match the seed's metrics", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", base)
      const sub = yield* breaker.subscribe
      yield* run(breaker, ok)
      yield* run(breaker, TestClock.adjust("2 seconds"))
      yield* failTimes(breaker, 3)
      yield* run(breaker, ok)
      const events = yield* drain(sub)
      const tags = events.map((e) =>
        e._tag === "CallRecorded" ? `${e.outcome}${e.slow ? "+slow" : ""}` : e._tag === "CallRejected" ? "rejected" : e.to
      )
      assert.deepStrictEqual(tags, ["success", "success+slow", "failure", "failure", "failure", "Open", "rejected"])
      const stats = yield* breaker.stats
      assert.strictEqual(stats.totalCalls, 5)
      assert.strictEqual(stats.successfulCalls, 2)
      assert.strictEqual(stats.failedCalls, 3)
      assert.strictEqual(stats.rejectedCalls, 1)
      assert.strictEqual(stats.failureRate, 0.6)
    }))

  it.effect("metrics: state gauge, calls by outcome, transitions, with attribute server", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("metrics-srv", base)
      yield* run(breaker, ok)
      yield* failTimes(breaker, 3)
      yield* run(breaker, ok)
      const gauge = yield* Metric.value(Metric.withAttributes(CB.stateGauge, { server: "metrics-srv" }))
      assert.strictEqual(gauge.value, 1)
      const calls = (outcome: string) =>
        Effect.map(
          Metric.value(Metric.withAttributes(CB.callsCounter, { server: "metrics-srv", outcome })),
          (s) => s.count
        )
      assert.strictEqual(yield* calls("success"), 1)
      assert.strictEqual(yield* calls("failure"), 3)
      assert.strictEqual(yield* calls("rejected"), 1)
      const transitions = yield* Metric.value(
        Metric.withAttributes(CB.transitionsCounter, { server: "metrics-srv", from: "Closed", to: "Open" })
      )
      assert.strictEqual(transitions.count, 1)
      yield* TestClock.adjust("10 seconds")
      const half = yield* Metric.value(Metric.withAttributes(CB.stateGauge, { server: "metrics-srv" }))
      assert.strictEqual(half.value, 2)
    }))
})

describe("CircuitBreakerRegistry", () => {
  it.effect("one bad server never blocks the others; per-server overrides", () =>
    Effect.gen(function*() {
      const registry = yield* CB.makeRegistry({
        defaults: base,
        servers: { fragile: { consecutiveFailureThreshold: 1 } }
      })
      const sub = yield* registry.subscribe
      yield* Effect.exit(registry.execute("fragile", fail))
      assert.strictEqual((yield* registry.get("fragile")).config.consecutiveFailureThreshold, 1)
      assert.isTrue(isRejected(yield* Effect.exit(registry.execute("fragile", ok))))
      assert.strictEqual(yield* registry.execute("healthy", ok), "ok")
      const states = yield* registry.states
      assert.strictEqual(states.get("fragile"), "Open")
      assert.strictEqual(states.get("healthy"), "Closed")
      const events = yield* drain(sub)
      assert.isTrue(events.some((e) => e._tag === "StateTransition" && e.server === "fragile"))
      assert.strictEqual(yield* registry.get("fragile"), yield* registry.get("fragile"))
    }))

  it.effect("the layer provides the service", () =>
    Effect.gen(function*() {
      const registry = yield* CB.CircuitBreakerRegistry
      assert.strictEqual(yield* registry.execute("a", ok), "ok")
      const single = yield* CB.CircuitBreaker
      assert.strictEqual(single.server, "one")
    }).pipe(
      Effect.provide(CB.CircuitBreakerRegistry.layer({ defaults: base })),
      Effect.provide(CB.CircuitBreaker.layer("one", base))
    ))
})

describe("CircuitBreakerRegistry add/remove", () => {
  it.effect("add merges defaults, servers[server] and config; replaces the previous breaker; remove forgets it", () =>
    Effect.gen(function*() {
      const registry = yield* CB.makeRegistry({
        defaults: base,
        servers: { s: { consecutiveFailureThreshold: 2 } }
      })
      const first = yield* registry.add("s")
      assert.strictEqual(first.config.consecutiveFailureThreshold, 2)
      assert.strictEqual(first.config.permittedCallsInHalfOpen, 3)
      yield* Effect.exit(first.execute(fail))
      const second = yield* registry.add("s", { consecutiveFailureThreshold: 1 })
      assert.notStrictEqual(second, first)
      assert.strictEqual(yield* registry.get("s"), second)
      assert.strictEqual(second.config.consecutiveFailureThreshold, 1)
      assert.strictEqual((yield* second.stats).totalCalls, 0) // a fresh breaker
      yield* registry.execute("s", fail)
        .pipe(Effect.exit)
      assert.strictEqual((yield* registry.states).get("s"), "Open")
      yield* registry.remove("s")
      yield* registry.remove("s") // absent: a no-op
      assert.isFalse((yield* registry.states).has("s"))
    }))

  it.effect("add fails with McpConfigError naming the field", () =>
    Effect.gen(function*() {
      const registry = yield* CB.makeRegistry({ defaults: base })
      const error = yield* Effect.flip(registry.add("s", { failureRateThreshold: 1.5 }))
      assert.strictEqual(error._tag, "McpConfigError")
      assert.strictEqual(error.path, "breaker.failureRateThreshold")
      const cross = yield* Effect.flip(registry.add("s", { permittedCallsInHalfOpen: 1, successThresholdToClose: 2 }))
      assert.strictEqual(cross.path, "breaker.successThresholdToClose")
      assert.isFalse((yield* registry.states).has("s"))
    }))
})

describe("CircuitBreaker: kept causes and failures counted once", () => {
  it.effect("a rejection carries the failure that opened the breaker (openedBy); a forced one carries none", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("s", base)
      yield* run(breaker, Effect.fail(new McpClosedError({ server: "s", method: "tools/call", message: "first" })))
      yield* run(breaker, Effect.fail(new McpClosedError({ server: "s", method: "tools/call", message: "second" })))
      yield* run(breaker, Effect.fail(new McpConnectError({ server: "s", message: "third", stderrTail: "" })))
      const rejected = yield* Effect.flip(breaker.execute(ok))
      assert.strictEqual(rejected._tag, "CircuitOpenError")
      const openedBy = (rejected as CB.CircuitOpenError).openedBy as McpConnectError
      assert.strictEqual(openedBy._tag, "McpConnectError")
      assert.strictEqual(openedBy.message, "third")
      // A failed probe reopens with its own failure.
      yield* TestClock.adjust("10 seconds")
      yield* run(breaker, Effect.fail(timeoutError()))
      const again = yield* Effect.flip(breaker.execute(ok))
      assert.strictEqual(((again as CB.CircuitOpenError).openedBy as McpTimeoutError)._tag, "McpTimeoutError")
      yield* breaker.isolate
      const forced = yield* Effect.flip(breaker.execute(ok))
      assert.isUndefined((forced as CB.CircuitOpenError).openedBy)
    }))

  it.effect("failures marked uncounted are ignored, whatever the classifier says; the closed path is unchanged", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("s", base, { classify: () => "failure" })
      for (let i = 0; i < 10; i++) {
        yield* run(breaker, Effect.fail(CB.markUncounted(new McpClosedError({ server: "s", method: "tools/call", message: "dup" }))))
      }
      const stats = yield* breaker.stats
      assert.strictEqual(stats.state, "Closed")
      assert.strictEqual(stats.failedCalls, 0)
      assert.strictEqual(stats.ignoredCalls, 10)
      assert.isTrue(CB.isUncounted(CB.markUncounted(timeoutError())))
      assert.isFalse(CB.isUncounted(timeoutError()))
      // An unmarked failure still counts.
      yield* run(breaker, Effect.fail(new McpProtocolError({ server: "s", method: "tools/call", code: -32603, message: "x" })))
      assert.strictEqual((yield* breaker.stats).failedCalls, 1)
    }))

  it("the default classifier ignores a tool with an invalid definition and a bad call option", () => {
    assert.strictEqual(CB.defaultClassifier({ _tag: "InvalidToolError" }, true), "ignore")
    assert.strictEqual(CB.defaultClassifier({ _tag: "McpConfigError" }, true), "ignore")
  })
})
