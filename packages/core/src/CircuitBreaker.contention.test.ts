/**
 * Contention: many fibers race for the half-open probe slots. The seed let many probes in (a racy
 * open → half-open transition) or none (lifetime counters); here exactly `permittedCallsInHalfOpen` get
 * through, whichever fiber triggers the transition.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as CB from "./CircuitBreaker.ts"
import { McpClosedError } from "./McpError.ts"

const closed = Effect.fail(new McpClosedError({ server: "s", method: "tools/call", message: "gone" }))

/** A clock set by hand whose sleeps never end: no timer fiber can move the breaker. */
const frozenClock = () => {
  let now = 0
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: () => now,
    currentTimeMillis: Effect.sync(() => now),
    currentTimeNanosUnsafe: () => BigInt(now) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(now) * 1_000_000n),
    monotonicTimeNanosUnsafe: () => BigInt(now) * 1_000_000n,
    monotonicTimeNanos: Effect.sync(() => BigInt(now) * 1_000_000n),
    sleep: () => Effect.never
  }
  return { clock, set: (millis: number) => (now = millis) }
}

const race = (permitted: number, fibers: number, letTimerRun: boolean) =>
  Effect.gen(function*() {
    const frozen = frozenClock()
    const breaker = yield* CB.make("contended", {
      consecutiveFailureThreshold: 1,
      waitDurationInOpen: "5 seconds",
      waitDurationInOpenBackoff: "fixed",
      permittedCallsInHalfOpen: permitted,
      successThresholdToClose: permitted
    }).pipe(letTimerRun ? (x) => x : Effect.provideService(Clock.Clock, frozen.clock))
    yield* Effect.exit(breaker.execute(closed))
    assert.strictEqual(yield* breaker.state, "Open")
    if (letTimerRun) {
      yield* TestClock.adjust("5 seconds") // the timer fiber moves the breaker to HalfOpen
    } else {
      // no timer can run: the first racing fiber performs the transition, computed from the clock
      frozen.set(5_000)
    }
    const gate = yield* Deferred.make<void>()
    const started = yield* Deferred.make<void>()
    let arrived = 0
    const attempt = Effect.gen(function*() {
      yield* Effect.yieldNow // interleave the fibers
      if (++arrived === fibers) yield* Deferred.succeed(started, undefined)
      return yield* Effect.exit(breaker.execute(Deferred.await(gate)))
    })
    const all = yield* Effect.forkChild(Effect.all(Array.from({ length: fibers }, () => attempt), {
      concurrency: "unbounded"
    }))
    yield* Deferred.await(started)
    // every fiber has asked for admission: rejections returned at once, admitted probes wait on the gate
    while ((yield* breaker.stats).rejectedCalls < fibers - permitted) yield* Effect.yieldNow
    yield* Deferred.succeed(gate, undefined)
    const exits = yield* Fiber.join(all)
    const admitted = exits.filter(Exit.isSuccess).length
    const rejected = exits.filter((e) =>
      Exit.isFailure(e) && Exit.findErrorOption(e)._tag === "Some"
    ).length
    assert.strictEqual(admitted, permitted)
    assert.strictEqual(rejected, fibers - permitted)
    assert.strictEqual(yield* breaker.state, "Closed")
    const transitions = (yield* breaker.stats).openings
    assert.strictEqual(transitions, 0)
  })

describe("CircuitBreaker with no timer", () => {
  it.effect("state is right with no traffic: Open reads HalfOpen when the wait ends; HalfOpen waits for a probe, then reads Open after its max wait", () =>
    Effect.gen(function*() {
      const frozen = frozenClock()
      const breaker = yield* CB.make("idle", {
        consecutiveFailureThreshold: 1,
        waitDurationInOpen: "5 seconds",
        waitDurationInOpenBackoff: "exponential",
        maxWaitDurationInHalfOpen: "20 seconds"
      }).pipe(Effect.provideService(Clock.Clock, frozen.clock))
      yield* Effect.exit(breaker.execute(closed))
      frozen.set(4_999)
      assert.strictEqual(yield* breaker.state, "Open")
      frozen.set(5_000)
      assert.strictEqual(yield* breaker.state, "HalfOpen") // the seed kept saying "open" here
      frozen.set(10 * 60_000) // long idle: it waits half-open for a probe; the wait in Open does not grow
      const idle = yield* breaker.status
      assert.strictEqual(idle.state, "HalfOpen")
      assert.strictEqual(idle.openings, 1)
      assert.strictEqual(idle.deadline, Infinity)
      // A probe that hangs: the max wait runs from the probe, then the breaker reopens with a doubled wait.
      const probe = yield* Effect.forkChild(breaker.execute(Effect.never))
      yield* Effect.yieldNow
      assert.strictEqual((yield* breaker.status).deadline, 10 * 60_000 + 20_000)
      frozen.set(10 * 60_000 + 20_000)
      const reopened = yield* breaker.status
      assert.strictEqual(reopened.state, "Open")
      assert.strictEqual(reopened.deadline, 10 * 60_000 + 20_000 + 10_000) // second opening: the wait doubled
      yield* Fiber.interrupt(probe)
    }))
})

describe("CircuitBreaker contention", () => {
  it.effect("1,000 fibers racing in HalfOpen: exactly the permitted number get through", () => race(3, 1000, true))
  it.effect("1,000 fibers racing at the Open -> HalfOpen boundary (lazy transition)", () => race(5, 1000, false))
  it.effect("1 permitted probe among 1,000", () => race(1, 1000, false))
})
