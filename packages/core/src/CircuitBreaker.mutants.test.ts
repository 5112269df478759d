/**
 * Tests that pin `CircuitBreaker.ts`'s hot path for mutation testing (`npm run mutation`, see MUTATION.md):
 * every branch of `defaultClassifier`, as a table; then the shell's hot path (rejections, `openedBy`, the
 * reaction to a step, the timer, the wait schedule, events, metrics and the synchronous permit).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Metric, PubSub, Schedule } from "effect"
import { TestClock } from "effect/testing"
import * as CB from "./CircuitBreaker.ts"
import { McpTimeoutError, McpToolError } from "./McpError.ts"

describe("CircuitBreaker.defaultClassifier (mutation pins)", () => {
  const cases: ReadonlyArray<readonly [unknown, boolean, CB.Verdict]> = [
    [{ _tag: "McpProtocolError", code: -32602 }, true, "ignore"], // invalid params: the caller's mistake
    // a result that broke its own outputSchema (McpToolCall marks it): the server's failure, whatever the code
    [{ _tag: "McpProtocolError", code: -32602, data: { reason: "outputSchema" } }, false, "failure"],
    [{ _tag: "McpProtocolError", code: -32600, data: { reason: "outputSchema" } }, false, "failure"],
    [{ _tag: "McpProtocolError", code: -32602, data: { reason: "other" } }, false, "ignore"],
    [{ _tag: "McpProtocolError", code: -32602, data: null }, false, "ignore"],
    [{ _tag: "McpProtocolError", code: -32601 }, true, "ignore"], // method not found
    [{ _tag: "McpProtocolError", code: -32603 }, false, "failure"], // internal error: the server's
    [{ _tag: "McpProtocolError" }, false, "failure"],
    [{ _tag: "McpConnectError" }, false, "failure"],
    [{ _tag: "McpTimeoutError" }, false, "failure"],
    [{ _tag: "McpClosedError" }, false, "failure"],
    [{ _tag: "McpToolError" }, true, "failure"],
    [{ _tag: "McpToolError" }, false, "ignore"],
    ...[
      "InvalidArgumentsError",
      "InvalidToolError",
      "McpConfigError",
      "UnknownToolError",
      "UnknownServerError",
      "McpMessageTooLargeError",
      "AuthorizationRequiredError",
      "McpAuthError",
      "CircuitOpenError",
      "PoolTimeoutError",
      "PoolClosedError"
    ].map((tag) => [{ _tag: tag }, true, "ignore"] as const),
    [{ _tag: "SomethingElse" }, false, "failure"],
    [{ code: -32602 }, false, "failure"], // no _tag
    [new Error("boom"), false, "failure"],
    [null, true, "failure"],
    ["McpToolError", false, "failure"], // a string is not a tagged error
    [undefined, false, "failure"]
  ]
  it("classifies every known error tag, and anything else as a failure", () => {
    for (const [error, countToolErrors, verdict] of cases) {
      assert.strictEqual(CB.defaultClassifier(error, countToolErrors), verdict, JSON.stringify([error, countToolErrors]))
    }
  })
})

// -------------------------------------------------------------------------------------------------------------
// The shell's hot path: rejections, openedBy, the reaction to a step, the timer, the wait schedule, events,
// metrics and the synchronous permit. Time is a TestClock that starts at 5 s (so `deadline - now` and
// `now - start` differ from their `+` mutants); a call "takes" time by advancing the TestClock inside it.
// -------------------------------------------------------------------------------------------------------------

const timeout = (n: number) => new McpTimeoutError({ server: "s", method: "tools/call", timeoutMs: 1, message: `timeout ${n}` })
const toolError = new McpToolError({ server: "s", tool: "t", text: "x", content: [], message: "tool failed" })
const ok = Effect.succeed("ok")
const taking = <A, E>(ms: number, self: Effect.Effect<A, E>) => Effect.andThen(TestClock.adjust(Duration.millis(ms)), self)

const config: CB.CircuitBreakerConfigInput = {
  consecutiveFailureThreshold: 1,
  failureRateThreshold: 1,
  slidingWindowSize: 10,
  minimumNumberOfCalls: 10,
  slowCallDuration: "1 second",
  slowCallRateThreshold: 1,
  waitDurationInOpen: "10 seconds",
  waitDurationInOpenBackoff: "fixed",
  permittedCallsInHalfOpen: 1,
  successThresholdToClose: 1,
  maxWaitDurationInHalfOpen: "30 seconds"
}

const drain = (sub: PubSub.Subscription<CB.CircuitBreakerEvent>) =>
  Effect.map(PubSub.takeUpTo(sub, 1000), (chunk) => Array.from(chunk))
const transitionsOf = (events: ReadonlyArray<CB.CircuitBreakerEvent>) =>
  events.filter((e): e is CB.StateTransition => e._tag === "StateTransition").map((t) => `${t.from}->${t.to}:${t.reason}@${t.at}`)
const rejectionOf = (breaker: CB.Breaker) => Effect.flip(breaker.execute(ok)) as Effect.Effect<CB.CircuitOpenError>
/** A probe that holds its slot until the returned latch is opened. */
const hold = (breaker: CB.Breaker) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const fiber = yield* Effect.forkChild(Effect.exit(breaker.execute(Deferred.await(gate))))
    yield* Effect.yieldNow
    return { release: Effect.andThen(Deferred.succeed(gate, undefined), Fiber.join(fiber)) }
  })
const startAt5s = TestClock.adjust("5 seconds")

describe("CircuitBreaker shell (mutation pins)", () => {
  it.effect("rejections in Open, HalfOpen and ForcedOpen: state, message, nextProbeAt, openedBy, CallRejected", () =>
    Effect.gen(function*() {
      yield* startAt5s
      const breaker = yield* CB.make("srv", config)
      const sub = yield* breaker.subscribe
      const error = timeout(1)
      yield* Effect.exit(breaker.execute(Effect.fail(error))) // opens at 5 000, probe at 15 000
      yield* TestClock.adjust("2 seconds")
      // (set here, not read: under mutation an earlier test's rejection may have left it at 0)
      const limit = Error.stackTraceLimit
      Error.stackTraceLimit = 7
      const open = yield* rejectionOf(breaker)
      const after = Error.stackTraceLimit
      Error.stackTraceLimit = limit
      assert.strictEqual(after, 7) // restored after building the error without a stack
      assert.deepInclude(open, { server: "srv", state: "Open", nextProbeAt: 15_000, openedBy: error })
      assert.strictEqual(open.message, `circuit breaker for "srv" is open; next probe in 8000 ms`)
      // the timer publishes Open -> HalfOpen at the deadline, with no call and no read
      yield* TestClock.adjust("8 seconds")
      const events = yield* drain(sub)
      assert.deepStrictEqual(transitionsOf(events), ["Closed->Open:ConsecutiveFailures@5000", "Open->HalfOpen:WaitElapsed@15000"])
      assert.deepStrictEqual(events.filter((e) => e._tag === "CallRejected"), [
        { _tag: "CallRejected", server: "srv", state: "Open", at: 7_000, nextProbeAt: 15_000 }
      ])
      const probe = yield* hold(breaker)
      const half = yield* rejectionOf(breaker)
      assert.deepInclude(half, { state: "HalfOpen", nextProbeAt: undefined, openedBy: error })
      assert.strictEqual(half.message, `circuit breaker for "srv" is half-open and all probe slots are taken`)
      assert.deepStrictEqual((yield* drain(sub)).filter((e) => e._tag === "CallRejected"), [
        { _tag: "CallRejected", server: "srv", state: "HalfOpen", at: 15_000, nextProbeAt: undefined }
      ])
      yield* probe.release
      yield* breaker.isolate
      const forced = yield* rejectionOf(breaker)
      assert.deepInclude(forced, { state: "ForcedOpen", nextProbeAt: undefined, openedBy: undefined })
      assert.strictEqual(forced.message, `circuit breaker for "srv" is forced open`)
    }))

  it.effect("openedBy: undefined when slow calls alone opened (after an earlier failure)", () =>
    Effect.gen(function*() {
      yield* startAt5s
      const breaker = yield* CB.make("srv", {
        ...config,
        consecutiveFailureThreshold: 0,
        slidingWindowSize: 4,
        minimumNumberOfCalls: 4,
        slowCallRateThreshold: 0.5
      })
      yield* Effect.exit(breaker.execute(Effect.fail(timeout(1))))
      yield* breaker.execute(ok)
      yield* breaker.execute(taking(2_000, ok))
      yield* breaker.execute(taking(2_000, ok)) // 2 slow of 4: SlowCallRate
      const rejected = yield* rejectionOf(breaker)
      assert.strictEqual(rejected.state, "Open")
      assert.strictEqual(rejected.openedBy, undefined)
    }))

  it.effect("openedBy: undefined when slow probes reopened (after a failure opened)", () =>
    Effect.gen(function*() {
      yield* startAt5s
      const breaker = yield* CB.make("srv", { ...config, permittedCallsInHalfOpen: 2, successThresholdToClose: 2, slowCallRateThreshold: 0.5 })
      const sub = yield* breaker.subscribe
      yield* Effect.exit(breaker.execute(Effect.fail(timeout(1))))
      yield* TestClock.adjust("10 seconds")
      yield* breaker.execute(taking(2_000, ok)) // slow probe: limit max(1, ceil(0.5 × 2)) = 1
      assert.deepStrictEqual(transitionsOf(yield* drain(sub)).at(-1), "HalfOpen->Open:SlowProbes@17000")
      assert.strictEqual((yield* rejectionOf(breaker)).openedBy, undefined)
    }))

  it.effect("openedBy after the HalfOpen max wait: the failure that opened, never an ignored probe's error", () =>
    Effect.gen(function*() {
      yield* startAt5s
      const breaker = yield* CB.make("srv", config)
      const sub = yield* breaker.subscribe
      const error = timeout(1)
      yield* Effect.exit(breaker.execute(Effect.fail(error)))
      yield* TestClock.adjust("10 seconds") // HalfOpen at 15 000
      yield* Effect.exit(breaker.execute(Effect.fail(toolError))) // ignored: the slot is given back
      const probe = yield* hold(breaker) // first probe that counts; the max wait ends at 45 000
      yield* TestClock.adjust("30 seconds")
      // published by the timer on the max-wait deadline that the probe's admission set (no read)
      assert.deepStrictEqual(transitionsOf(yield* drain(sub)).slice(1), [
        "Open->HalfOpen:WaitElapsed@15000",
        "HalfOpen->Open:HalfOpenMaxWait@45000"
      ])
      assert.strictEqual((yield* rejectionOf(breaker)).openedBy, error)
      yield* probe.release
    }))

  it.effect("openedBy after a close: the failures before the close are forgotten", () =>
    Effect.gen(function*() {
      yield* startAt5s
      const breaker = yield* CB.make("srv", {
        ...config,
        consecutiveFailureThreshold: 1,
        slidingWindowSize: 2,
        minimumNumberOfCalls: 2,
        slowCallRateThreshold: 1
      })
      yield* Effect.exit(breaker.execute(Effect.fail(timeout(1)))) // opens (ConsecutiveFailures)
      yield* TestClock.adjust("10 seconds")
      yield* breaker.execute(ok) // probe succeeds: Closed
      assert.strictEqual(yield* breaker.state, "Closed")
      yield* breaker.execute(taking(2_000, ok))
      yield* breaker.execute(taking(2_000, ok)) // SlowCallRate
      assert.strictEqual(yield* breaker.state, "Open")
      yield* TestClock.adjust("10 seconds")
      const probe = yield* hold(breaker)
      yield* TestClock.adjust("30 seconds") // HalfOpenMaxWait: openedBy is the last failure since the close
      assert.strictEqual(yield* breaker.state, "Open")
      assert.strictEqual((yield* rejectionOf(breaker)).openedBy, undefined)
      yield* probe.release
    }))

  it.effect("a failed probe whose new Open deadline equals the max-wait deadline still reacts", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", config)
      const sub = yield* breaker.subscribe
      yield* Effect.exit(breaker.execute(Effect.fail(timeout(1)))) // Open, probe at 10 000
      yield* TestClock.adjust("10 seconds")
      // admitted at 10 000 (max wait until 40 000), fails at 30 000: Open until 30 000 + 10 000 = 40 000
      yield* Effect.exit(breaker.execute(taking(20_000, Effect.fail(timeout(2)))))
      assert.deepStrictEqual(transitionsOf(yield* drain(sub)).slice(1), [
        "Open->HalfOpen:WaitElapsed@10000",
        "HalfOpen->Open:ProbeFailed@30000"
      ])
      assert.strictEqual((yield* breaker.status).openings, 2)
    }))

  it.effect("the wait schedule: stepped with the opening's number; a zero delay or a done schedule keeps the wait", () =>
    Effect.gen(function*() {
      const byOpening = Schedule.spaced("1 second").pipe(
        Schedule.modifyDelay(({ input }) => Effect.succeed(Duration.seconds(input as number)))
      )
      const numbered = yield* CB.make("a", config, { openSchedule: byOpening })
      yield* Effect.exit(numbered.execute(Effect.fail(timeout(1))))
      const first = yield* numbered.status
      assert.strictEqual(first.deadline - first.since, 1_000) // opening 1 waits 1 s
      yield* TestClock.adjust("1 second")
      yield* Effect.exit(numbered.execute(Effect.fail(timeout(2))))
      const second = yield* numbered.status
      assert.strictEqual(second.deadline - second.since, 2_000) // opening 2 waits 2 s

      const zero = yield* CB.make("b", config, { openSchedule: Schedule.spaced("0 millis") })
      yield* Effect.exit(zero.execute(Effect.fail(timeout(3))))
      const z = yield* zero.status
      assert.strictEqual(z.state, "Open")
      assert.strictEqual(z.deadline - z.since, 10_000) // the configured wait stays

      const done = yield* CB.make("c", config, { openSchedule: Schedule.recurs(0) })
      yield* Effect.exit(done.execute(Effect.fail(timeout(4))))
      const d = yield* done.status
      assert.strictEqual(d.deadline - d.since, 10_000)
    }))

  it.effect("exponential backoff starts afresh after a close (the second wait after it is the second step)", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("srv", {
        ...config,
        waitDurationInOpen: "1 second",
        waitDurationInOpenBackoff: "exponential",
        waitDurationInOpenMultiplier: 2,
        maxWaitDurationInOpen: "1 hour"
      })
      const waitAfterFailure = Effect.gen(function*() {
        yield* Effect.exit(breaker.execute(Effect.fail(timeout(1))))
        const s = yield* breaker.status
        assert.strictEqual(s.state, "Open")
        yield* TestClock.adjust(Duration.millis(s.deadline - s.since))
        return s.deadline - s.since
      })
      const before = [yield* waitAfterFailure, yield* waitAfterFailure, yield* waitAfterFailure]
      yield* breaker.execute(ok) // probe succeeds: Closed
      const after = [yield* waitAfterFailure, yield* waitAfterFailure]
      assert.deepStrictEqual(before, [1_000, 2_000, 4_000])
      assert.deepStrictEqual(after, [1_000, 2_000])
    }))

  it.effect("verdicts: a defect is a failure whatever the classifier says; CallRecorded carries error and duration", () =>
    Effect.gen(function*() {
      yield* startAt5s
      const special = timeout(7)
      const breaker = yield* CB.make("srv", { ...config, consecutiveFailureThreshold: 0 }, {
        classify: (e) => (e === special ? "success" : "ignore")
      })
      const sub = yield* breaker.subscribe
      const defect = new Error("boom")
      yield* Effect.exit(breaker.execute(taking(1_500, Effect.die(defect))))
      yield* Effect.exit(breaker.execute(Effect.fail(special)))
      yield* Effect.exit(breaker.execute(Effect.fail(toolError)))
      yield* breaker.execute(taking(300, ok))
      const stats = yield* breaker.stats
      assert.deepInclude(stats, { failedCalls: 1, successfulCalls: 2, ignoredCalls: 1, slowCalls: 1 })
      const recorded = (yield* drain(sub)).filter((e) => e._tag === "CallRecorded")
      assert.deepStrictEqual(recorded, [
        { _tag: "CallRecorded", server: "srv", outcome: "failure", slow: true, durationMs: 1_500, at: 6_500, error: defect },
        { _tag: "CallRecorded", server: "srv", outcome: "success", slow: false, durationMs: 0, at: 6_500 },
        { _tag: "CallRecorded", server: "srv", outcome: "ignore", slow: false, durationMs: 0, at: 6_500, error: toolError },
        { _tag: "CallRecorded", server: "srv", outcome: "success", slow: false, durationMs: 300, at: 6_800 }
      ])
    }))

  it.effect("metrics: ignored and slow calls are counted under their own outcome", () =>
    Effect.gen(function*() {
      const breaker = yield* CB.make("metered", { ...config, consecutiveFailureThreshold: 0 })
      yield* Effect.exit(breaker.execute(Effect.fail(toolError)))
      yield* breaker.execute(taking(2_000, ok))
      yield* breaker.execute(ok)
      const count = (outcome: string) =>
        Effect.map(Metric.value(Metric.withAttributes(CB.callsCounter, { server: "metered", outcome })), (s) => s.count)
      assert.deepStrictEqual(
        yield* Effect.forEach(["success", "failure", "ignored", "slow"], count),
        [2, 0, 1, 1]
      )
    }))

  it.effect("metrics: the per-call series keep the context's metric attributes and go to its registry", () =>
    Effect.gen(function*() {
      const registry = new Map()
      const inContext = <A, E, R>(self: Effect.Effect<A, E, R>) =>
        self.pipe(
          Effect.provideService(Metric.CurrentMetricAttributes, { env: "test" }),
          Effect.provideService(Metric.MetricRegistry, registry)
        )
      const breaker = yield* inContext(CB.make("attributed", config))
      yield* breaker.execute(ok)
      yield* Effect.exit(breaker.execute(Effect.fail(timeout(1))))
      const count = (outcome: string) =>
        Effect.map(
          inContext(Metric.value(Metric.withAttributes(CB.callsCounter, { server: "attributed", outcome }))),
          (s) => s.count
        )
      assert.deepStrictEqual([yield* count("success"), yield* count("failure")], [1, 1])
      // nothing went to the default registry under these names
      const outside = yield* Metric.value(Metric.withAttributes(CB.callsCounter, { server: "attributed", outcome: "success" }))
      assert.strictEqual(outside.count, 0)
    }))

  it.effect("per-call events are built only for listeners: a transitions-only subscription gets none", () =>
    Effect.gen(function*() {
      const registry = yield* CB.makeRegistry({ defaults: config })
      const onlyTransitions = yield* registry.subscribeTransitions
      yield* registry.execute("srv", ok)
      yield* Effect.exit(registry.execute("srv", Effect.fail(timeout(1))))
      yield* Effect.exit(registry.execute("srv", ok)) // rejected
      assert.deepStrictEqual((yield* drain(onlyTransitions)).map((e) => e._tag), ["StateTransition"])
      // a registry subscriber (no subscriber on the breaker itself) turns them on
      const all = yield* registry.subscribe
      yield* Effect.exit(registry.execute("srv", ok)) // rejected
      yield* registry.execute("other", ok)
      assert.deepStrictEqual((yield* drain(all)).map((e) => `${e._tag}:${e.server}`), [
        "CallRejected:srv",
        "CallRecorded:other"
      ])
    }))

  it.effect("the synchronous permit: a generation in Closed and MetricsOnly only; recordUnsafe times the call", () =>
    Effect.gen(function*() {
      yield* startAt5s
      const breaker = yield* CB.make("srv", { ...config, consecutiveFailureThreshold: 2 })
      const tryAcquire = breaker.tryAcquireUnsafe!
      const record = breaker.recordUnsafe!
      const g = tryAcquire()
      assert.strictEqual(g, 0)
      assert.strictEqual(record(g!, 5_000, Exit.succeed(1)), undefined) // nothing to react to
      assert.strictEqual(record(g!, 3_000, Exit.succeed(1)), undefined) // took 2 s: slow
      assert.deepInclude(yield* breaker.stats, { successfulCalls: 2, slowCalls: 1 })
      assert.strictEqual(record(g!, 5_000, Exit.fail(timeout(1))), undefined)
      const reaction = record(g!, 5_000, Exit.fail(timeout(2))) // opens: the transition is to be published
      assert.isDefined(reaction)
      yield* reaction!
      assert.strictEqual(tryAcquire(), undefined) // Open
      yield* breaker.isolate
      assert.strictEqual(tryAcquire(), undefined)
      yield* breaker.disable
      assert.strictEqual(tryAcquire(), undefined)
      yield* breaker.metricsOnly
      assert.strictEqual(tryAcquire(), (yield* breaker.status).generation)
      yield* breaker.reset
      assert.strictEqual(tryAcquire(), (yield* breaker.status).generation)
    }))
})
