/**
 * Property test against a reference model: random configs and random sequences of calls (success, counted
 * failure, ignored tool error, unknown error, interruption; each with a random duration, so some are slow),
 * time advances and manual transitions. After every step the breaker and the model must agree on the
 * admit/reject decision, the state and the window counters. Time is a `TestClock`; nothing sleeps.
 */
import { describe, it } from "@effect/vitest"
import { Clock, Effect, Exit } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as CB from "./CircuitBreaker.ts"
import { McpTimeoutError, McpToolError } from "./McpError.ts"

interface ModelConfig {
  readonly consecutiveFailureThreshold: number
  readonly failureRateThreshold: number
  readonly slidingWindowType: "count" | "time"
  readonly slidingWindowSize: number
  readonly minimumNumberOfCalls: number
  readonly slowMs: number
  readonly slowCallRateThreshold: number
  readonly waitMs: number
  readonly backoff: "fixed" | "exponential"
  readonly multiplier: number
  readonly capMs: number
  readonly permitted: number
  readonly successThreshold: number
  readonly halfOpenMaxMs: number
  readonly countToolErrors: boolean
}

type Kind = "ok" | "timeout" | "tool" | "error" | "interrupt"

type Command =
  | { readonly _tag: "Call"; readonly kind: Kind; readonly durationMs: number }
  | { readonly _tag: "Advance"; readonly ms: number }
  | { readonly _tag: "Manual"; readonly to: "ForcedOpen" | "Disabled" | "MetricsOnly" | "Closed" }

/** The reference: a plain, obviously-written restatement of the rules in CircuitBreaker.ts's doc comment. */
class Model {
  state: CB.CircuitState = "Closed"
  generation = 0
  deadline = Infinity
  openings = 0
  window: Array<{ failure: boolean; slow: boolean; at: number }> = []
  consecutive = 0
  used = 0
  successes = 0
  slowProbes = 0
  readonly c: ModelConfig
  now: number
  constructor(c: ModelConfig, now: number) {
    this.c = c
    this.now = now
  }

  wait(k: number): number {
    return this.c.backoff === "fixed"
      ? this.c.waitMs
      : Math.min(this.c.waitMs * this.c.multiplier ** (k - 1), this.c.capMs)
  }

  enter(to: CB.CircuitState, at: number): void {
    this.generation++
    this.deadline = Infinity
    if (to === "Open") {
      this.openings++
      this.deadline = at + this.wait(this.openings)
    } else if (to === "HalfOpen") {
      // the max wait starts with the first probe (see admit)
      this.used = this.successes = this.slowProbes = 0
    }
    if (to === "Closed") this.openings = 0
    if (to === "Closed" || to === "MetricsOnly") {
      this.window = []
      this.consecutive = 0
    }
    this.state = to
  }

  advance(): void {
    while (this.now >= this.deadline) {
      if (this.state === "Open") this.enter("HalfOpen", this.deadline)
      else this.enter("Open", this.deadline)
    }
  }

  inWindow(): Array<{ failure: boolean; slow: boolean }> {
    if (this.c.slidingWindowType === "count") return this.window.slice(-this.c.slidingWindowSize)
    const second = Math.floor(this.now / 1000)
    return this.window.filter((e) => Math.floor(e.at / 1000) > second - this.c.slidingWindowSize)
  }

  /** Returns the generation admitted in, -1 for a rejection, -2 for "runs unrecorded". */
  admit(): number {
    this.advance()
    switch (this.state) {
      case "Closed":
      case "MetricsOnly":
        return this.generation
      case "Disabled":
        return -2
      case "HalfOpen":
        if (this.used < this.c.permitted) {
          if (this.used++ === 0 && this.deadline === Infinity) this.deadline = this.now + this.c.halfOpenMaxMs
          return this.generation
        }
        return -1
      default:
        return -1
    }
  }

  complete(generation: number, kind: Kind, durationMs: number): void {
    this.advance()
    const verdict = kind === "ok"
      ? "success"
      : kind === "interrupt" || (kind === "tool" && !this.c.countToolErrors)
      ? "ignore"
      : "failure"
    if (generation !== this.generation) return
    const slow = verdict !== "ignore" && durationMs > this.c.slowMs
    const failure = verdict === "failure"
    if (this.state === "Closed" || this.state === "MetricsOnly") {
      if (verdict === "ignore") return
      this.window.push({ failure, slow, at: this.now })
      this.consecutive = failure ? this.consecutive + 1 : 0
      if (this.state === "MetricsOnly") return
      const w = this.inWindow()
      const calls = w.length
      const failures = w.filter((e) => e.failure).length
      const slowCalls = w.filter((e) => e.slow).length
      const minimum = this.c.slidingWindowType === "count"
        ? Math.min(this.c.minimumNumberOfCalls, this.c.slidingWindowSize)
        : this.c.minimumNumberOfCalls
      if (this.c.consecutiveFailureThreshold > 0 && this.consecutive >= this.c.consecutiveFailureThreshold) {
        this.enter("Open", this.now)
      } else if (
        calls >= minimum &&
        (failures / calls >= this.c.failureRateThreshold || slowCalls / calls >= this.c.slowCallRateThreshold)
      ) {
        this.enter("Open", this.now)
      }
    } else if (this.state === "HalfOpen") {
      if (verdict === "ignore") this.used--
      else if (failure) this.enter("Open", this.now)
      else if (slow && ++this.slowProbes >= Math.max(1, Math.ceil(this.c.slowCallRateThreshold * this.c.permitted))) {
        this.enter("Open", this.now)
      } else if (++this.successes >= this.c.successThreshold) this.enter("Closed", this.now)
    }
  }
}

const configArb: fc.Arbitrary<ModelConfig> = fc
  .record({
    consecutiveFailureThreshold: fc.integer({ min: 0, max: 4 }),
    failureRateThreshold: fc.constantFrom(0.25, 0.5, 0.75, 1),
    slidingWindowType: fc.constantFrom("count" as const, "time" as const),
    slidingWindowSize: fc.integer({ min: 1, max: 6 }),
    minimumNumberOfCalls: fc.integer({ min: 1, max: 5 }),
    slowMs: fc.constantFrom(500, 1000),
    slowCallRateThreshold: fc.constantFrom(0.5, 1),
    waitMs: fc.integer({ min: 1, max: 5 }).map((s) => s * 1000),
    backoff: fc.constantFrom("fixed" as const, "exponential" as const),
    multiplier: fc.constantFrom(1.5, 2, 3),
    capMs: fc.integer({ min: 5, max: 30 }).map((s) => s * 1000),
    permitted: fc.integer({ min: 1, max: 3 }),
    successFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    halfOpenMaxMs: fc.integer({ min: 1, max: 20 }).map((s) => s * 1000),
    countToolErrors: fc.boolean()
  })
  .map(({ successFraction, ...c }) => ({
    ...c,
    successThreshold: Math.max(1, Math.ceil(successFraction * c.permitted))
  }))

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      _tag: fc.constant("Call" as const),
      kind: fc.constantFrom<Kind>("ok", "ok", "timeout", "timeout", "tool", "error", "interrupt"),
      durationMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3000 }))
    })
  },
  { weight: 3, arbitrary: fc.record({ _tag: fc.constant("Advance" as const), ms: fc.integer({ min: 0, max: 40_000 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      _tag: fc.constant("Manual" as const),
      to: fc.constantFrom("ForcedOpen" as const, "Disabled" as const, "MetricsOnly" as const, "Closed" as const)
    })
  }
)

const toInput = (c: ModelConfig): CB.CircuitBreakerConfigInput => ({
  consecutiveFailureThreshold: c.consecutiveFailureThreshold,
  failureRateThreshold: c.failureRateThreshold,
  slidingWindowType: c.slidingWindowType,
  slidingWindowSize: c.slidingWindowSize,
  minimumNumberOfCalls: c.minimumNumberOfCalls,
  slowCallDuration: c.slowMs,
  slowCallRateThreshold: c.slowCallRateThreshold,
  waitDurationInOpen: c.waitMs,
  waitDurationInOpenBackoff: c.backoff,
  waitDurationInOpenMultiplier: c.multiplier,
  maxWaitDurationInOpen: c.capMs,
  waitDurationInOpenJitter: false,
  permittedCallsInHalfOpen: c.permitted,
  successThresholdToClose: c.successThreshold,
  maxWaitDurationInHalfOpen: c.halfOpenMaxMs,
  countToolErrors: c.countToolErrors
})

const outcome = (kind: Kind): Effect.Effect<string, unknown> => {
  switch (kind) {
    case "ok":
      return Effect.succeed("ok")
    case "timeout":
      return Effect.fail(new McpTimeoutError({ server: "m", method: "tools/call", timeoutMs: 1, message: "t" }))
    case "tool":
      return Effect.fail(new McpToolError({ server: "m", tool: "t", text: "x", content: [], message: "x" }))
    case "error":
      return Effect.fail(new Error("boom"))
    case "interrupt":
      return Effect.interrupt
  }
}

const check = (cond: boolean, message: () => string) => {
  if (!cond) throw new Error(message())
}

const runScenario = (config: ModelConfig, commands: ReadonlyArray<Command>) =>
  Effect.gen(function*() {
    const breaker = yield* CB.make("model", toInput(config))
    const model = new Model(config, yield* Clock.currentTimeMillis)
    const log: Array<string> = []
    for (const command of commands) {
      log.push(JSON.stringify(command))
      if (command._tag === "Advance") {
        yield* TestClock.adjust(command.ms)
        model.now += command.ms
      } else if (command._tag === "Manual") {
        const b = breaker
        yield* command.to === "ForcedOpen"
          ? b.isolate
          : command.to === "Disabled"
          ? b.disable
          : command.to === "MetricsOnly"
          ? b.metricsOnly
          : b.reset
        model.advance()
        model.enter(command.to, model.now)
      } else {
        const admitted = model.admit()
        const exit = yield* Effect.exit(
          breaker.execute(Effect.andThen(TestClock.adjust(command.durationMs), outcome(command.kind)))
        )
        const error = Exit.isFailure(exit) ? Exit.findErrorOption(exit) : undefined
        const rejected = error !== undefined && error._tag === "Some" &&
          (error.value as { _tag?: string })._tag === "CircuitOpenError"
        check(
          rejected === (admitted === -1),
          () => `admit decision differs: breaker rejected=${rejected}, model admitted=${admitted}\n${log.join("\n")}`
        )
        if (rejected) yield* TestClock.adjust(command.durationMs)
        model.now += command.durationMs
        if (admitted >= 0) model.complete(admitted, command.kind, command.durationMs)
      }
      model.advance()
      const stats = yield* breaker.stats
      check(
        stats.state === model.state,
        () => `state differs: breaker ${stats.state}, model ${model.state}\n${log.join("\n")}`
      )
      const w = model.inWindow()
      check(
        stats.windowCalls === w.length && stats.windowFailures === w.filter((e) => e.failure).length,
        () => `window differs: breaker ${stats.windowCalls}/${stats.windowFailures}, model ${w.length}\n${log.join("\n")}`
      )
      if (model.state === "Open") {
        check(
          stats.nextProbeAt === model.deadline,
          () => `next probe differs: ${stats.nextProbeAt} vs ${model.deadline}\n${log.join("\n")}`
        )
      }
    }
  }).pipe(Effect.scoped, Effect.provide(TestClock.layer()))

describe("CircuitBreaker vs reference model", () => {
  it("agrees on every admit/reject decision, state and window (fast-check)", async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.array(commandArb, { minLength: 1, maxLength: 80 }), (config, commands) =>
        Effect.runPromise(runScenario(config, commands))),
      { numRuns: 300 }
    )
  })
})
