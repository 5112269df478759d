/**
 * A circuit breaker per MCP server: when a server hangs or fails, callers get an immediate typed
 * {@link CircuitOpenError} instead of waiting on timeouts, and the breaker probes for recovery by itself.
 *
 * Semantics follow resilience4j's breaker:
 *
 * - **Closed** — calls run. Outcomes go into a sliding window (count-based: the last N calls, or
 *   time-based: the last N seconds). The breaker opens when `consecutiveFailureThreshold` counted failures
 *   happen in a row, or — once the window holds `minimumNumberOfCalls` — when the failure rate reaches
 *   `failureRateThreshold` or the slow-call rate reaches `slowCallRateThreshold`.
 * - **Open** — calls fail fast with {@link CircuitOpenError}. The wait is a `Schedule` (fixed, or exponential
 *   with optional jitter and a cap) stepped once per consecutive opening (a failed probe, or the half-open
 *   max wait running out), so a breaker that reopens waits longer; closing resets it. The schedule must be
 *   synchronous (the built-in ones are): it is stepped inside the breaker's synchronous state update. When the wait ends the breaker is **HalfOpen**, even if no call arrives: the state is computed
 *   from the `Clock` on every read, and a timer fiber publishes the transition.
 * - **HalfOpen** — exactly `permittedCallsInHalfOpen` probes are admitted (atomically, even under heavy
 *   contention). Any counted failure reopens; `successThresholdToClose` successful probes close. After
 *   `maxWaitDurationInHalfOpen` from the first probe without a decision the breaker reopens, so it is never
 *   stuck half-open; with no traffic it waits half-open, so the first call after a quiet period is a probe.
 * - Manual states: **ForcedOpen** (`isolate`), **Disabled** (`disable`, everything passes, nothing is
 *   recorded) and **MetricsOnly** (`metricsOnly`, everything passes, outcomes are recorded, never opens).
 *
 * Interruption never counts as a failure: an interrupted call is "ignored" (a half-open probe slot is given
 * back). Errors are classified by their `_tag`, never by message text.
 *
 * Seed (Go tutorial) names map as follows:
 *
 * | seed                    | Keel                                                    |
 * | ----------------------- | ------------------------------------------------------- |
 * | `FailureThreshold`      | `consecutiveFailureThreshold`                           |
 * | `FailureRateThreshold`  | `failureRateThreshold` (a fraction, 0.5 = 50%)          |
 * | `Timeout`               | `waitDurationInOpen`                                    |
 * | `MaxHalfOpenRequests`   | `permittedCallsInHalfOpen`                              |
 * | `SuccessThreshold`      | `successThresholdToClose`                               |
 * | `Execute(ctx, fn)`      | `breaker.execute(effect)`                               |
 * | `State()`               | `breaker.state`                                         |
 * | `OnStateChange(f)`      | `breaker.onStateChange(f)` / `breaker.transitions`      |
 * | `GetMetrics()`          | `breaker.stats`                                         |
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as PubSub from "effect/PubSub"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ConfigSchema from "./ConfigSchema.ts"
import { McpConfigError } from "./ConfigSchema.ts"

// -------------------------------------------------------------------------------------------------------------
// states
// -------------------------------------------------------------------------------------------------------------

/**
 * The state of a breaker. `Closed`, `Open` and `HalfOpen` are automatic; `ForcedOpen`, `Disabled` and
 * `MetricsOnly` are entered and left only by hand.
 *
 * @since 0.1.0
 * @category models
 */
export type CircuitState = "Closed" | "Open" | "HalfOpen" | "ForcedOpen" | "Disabled" | "MetricsOnly"

/**
 * The value the `keel_circuit_breaker_state` gauge reports for each state: 0 closed, 1 open, 2 half-open,
 * then 3 forced-open, 4 disabled, 5 metrics-only.
 *
 * @since 0.1.0
 * @category models
 */
export const stateGaugeValue: { readonly [S in CircuitState]: number } = {
  Closed: 0,
  Open: 1,
  HalfOpen: 2,
  ForcedOpen: 3,
  Disabled: 4,
  MetricsOnly: 5
}

/**
 * Why a transition happened.
 *
 * @since 0.1.0
 * @category models
 */
export type TransitionReason =
  | "ConsecutiveFailures"
  | "FailureRate"
  | "SlowCallRate"
  | "WaitElapsed"
  | "ProbeFailed"
  | "SlowProbes"
  | "ProbesSucceeded"
  | "HalfOpenMaxWait"
  | "Manual"

// -------------------------------------------------------------------------------------------------------------
// config
// -------------------------------------------------------------------------------------------------------------

const Millis = (defaultMillis: number) =>
  Schema.DurationFromMillis.pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultMillis)))
const IntAtLeast = (min: number, def: number) =>
  Schema.Int.check(Schema.isGreaterThanOrEqualTo(min)).pipe(Schema.withDecodingDefaultKey(Effect.succeed(def)))
const Fraction = (def: number) =>
  Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1)).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(def))
  )

/**
 * The breaker's configuration as a Schema. Every key is optional when decoding; the defaults are:
 *
 * | key                                | default       | seed name / meaning                                         |
 * | ---------------------------------- | ------------- | ----------------------------------------------------------- |
 * | `consecutiveFailureThreshold`      | 5             | `FailureThreshold`: counted failures in a row that open; 0 = off |
 * | `failureRateThreshold`             | 0.5           | `FailureRateThreshold`: failure fraction over the window that opens |
 * | `slidingWindowType`                | `"count"`     | `"count"`: last N calls; `"time"`: last N seconds           |
 * | `slidingWindowSize`                | 20            | N (calls or seconds)                                        |
 * | `minimumNumberOfCalls`             | 10            | calls in the window before rates are judged (count windows use min(this, N)) |
 * | `slowCallDuration`                 | 60 s (ms)     | a call taking longer than this is slow                      |
 * | `slowCallRateThreshold`            | 1             | slow fraction over the window that opens (1 = all slow)     |
 * | `waitDurationInOpen`               | 10 s (ms)     | `Timeout`: the first wait in Open before probing            |
 * | `waitDurationInOpenBackoff`        | `"exponential"` | `"fixed"` or `"exponential"` growth on each consecutive reopen |
 * | `waitDurationInOpenMultiplier`     | 2             | exponential factor                                          |
 * | `maxWaitDurationInOpen`            | 5 min (ms)    | the cap of the exponential wait                             |
 * | `waitDurationInOpenJitter`         | false         | scale each wait by a random factor in [0.8, 1.2] (before the cap) |
 * | `permittedCallsInHalfOpen`         | 3             | `MaxHalfOpenRequests`: probes admitted in HalfOpen          |
 * | `successThresholdToClose`          | 2             | `SuccessThreshold`: successful probes that close (≤ permitted) |
 * | `maxWaitDurationInHalfOpen`        | 60 s (ms)     | HalfOpen reopens this long after its first probe without a decision |
 * | `countToolErrors`                  | false         | whether `McpToolError` (a tool result with `isError`) counts as a failure |
 *
 * Durations are encoded as milliseconds and decoded to `Duration`.
 *
 * @since 0.1.0
 * @category config
 */
export const CircuitBreakerConfig = Schema.Struct({
  consecutiveFailureThreshold: IntAtLeast(0, 5),
  failureRateThreshold: Fraction(0.5),
  slidingWindowType: Schema.Literals(["count", "time"]).pipe(Schema.withDecodingDefaultKey(Effect.succeed("count"))),
  slidingWindowSize: IntAtLeast(1, 20),
  minimumNumberOfCalls: IntAtLeast(1, 10),
  slowCallDuration: Millis(60_000),
  slowCallRateThreshold: Fraction(1),
  waitDurationInOpen: Millis(10_000),
  waitDurationInOpenBackoff: Schema.Literals(["fixed", "exponential"]).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed("exponential"))
  ),
  waitDurationInOpenMultiplier: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(1)).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(2))
  ),
  maxWaitDurationInOpen: Millis(300_000),
  waitDurationInOpenJitter: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false))),
  permittedCallsInHalfOpen: IntAtLeast(1, 3),
  successThresholdToClose: IntAtLeast(1, 2),
  maxWaitDurationInHalfOpen: Millis(60_000),
  countToolErrors: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false)))
})

/**
 * A decoded, complete configuration.
 *
 * @since 0.1.0
 * @category config
 */
export type CircuitBreakerConfig = typeof CircuitBreakerConfig.Type

/**
 * Configuration as users write it: every key optional, durations as any `Duration.Input`.
 *
 * @since 0.1.0
 * @category config
 */
export type CircuitBreakerConfigInput = {
  readonly [K in keyof CircuitBreakerConfig]?: CircuitBreakerConfig[K] extends Duration.Duration ? Duration.Input
    : CircuitBreakerConfig[K]
}

const durationKeys = [
  "slowCallDuration",
  "waitDurationInOpen",
  "maxWaitDurationInOpen",
  "maxWaitDurationInHalfOpen"
] as const

const decodeConfig = Schema.decodeUnknownSync(CircuitBreakerConfig)

const decodeSettings = ConfigSchema.decodeSettings(CircuitBreakerConfig, "breaker", durationKeys)

/**
 * Fills in defaults and validates, as an Effect: an invalid setting fails with an {@link McpConfigError}
 * whose `path` names the field under `path` (default `"breaker"`), e.g. `breaker.failureRateThreshold`.
 * `successThresholdToClose` above `permittedCallsInHalfOpen` (the breaker could never close) and a
 * non-positive `maxWaitDurationInHalfOpen` are errors too.
 *
 * @since 0.2.0
 * @category config
 */
export const decode = (
  input: CircuitBreakerConfigInput | CircuitBreakerConfig = {},
  path = "breaker"
): Effect.Effect<CircuitBreakerConfig, McpConfigError> =>
  Effect.flatMap(decodeSettings(input, path), (config) => {
    if (config.successThresholdToClose > config.permittedCallsInHalfOpen) {
      return Effect.fail(
        new McpConfigError({
          path: `${path}.successThresholdToClose`,
          message: `Expected a value less than or equal to permittedCallsInHalfOpen (${config.permittedCallsInHalfOpen})`
        })
      )
    }
    if (Duration.toMillis(config.maxWaitDurationInHalfOpen) <= 0) {
      return Effect.fail(
        new McpConfigError({ path: `${path}.maxWaitDurationInHalfOpen`, message: "Expected a positive duration" })
      )
    }
    return Effect.succeed(config)
  })

/**
 * Fills in defaults and validates. Throws a `SchemaError` on an invalid value, and a `RangeError` when
 * `successThresholdToClose` exceeds `permittedCallsInHalfOpen` (the breaker could never close).
 *
 * @since 0.1.0
 * @category config
 */
export const resolveConfig = (input: CircuitBreakerConfigInput = {}): CircuitBreakerConfig => {
  const encoded: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue
    encoded[key] = (durationKeys as ReadonlyArray<string>).includes(key)
      ? Duration.toMillis(Duration.fromInputUnsafe(value as Duration.Input))
      : value
  }
  const config = decodeConfig(encoded)
  if (config.successThresholdToClose > config.permittedCallsInHalfOpen) {
    throw new RangeError(
      `CircuitBreaker: successThresholdToClose (${config.successThresholdToClose}) must not exceed ` +
        `permittedCallsInHalfOpen (${config.permittedCallsInHalfOpen})`
    )
  }
  if (Duration.toMillis(config.maxWaitDurationInHalfOpen) <= 0) {
    throw new RangeError("CircuitBreaker: maxWaitDurationInHalfOpen must be positive")
  }
  return config
}

/**
 * The default configuration (see {@link CircuitBreakerConfig} for the values).
 *
 * @since 0.1.0
 * @category config
 */
export const defaultConfig: CircuitBreakerConfig = resolveConfig()

/**
 * The `Schedule` a config describes for the wait in Open: `Schedule.spaced(waitDurationInOpen)` when
 * fixed, or `Schedule.exponential(waitDurationInOpen, multiplier)` (optionally jittered) capped at
 * `maxWaitDurationInOpen`. The breaker steps it once per consecutive opening and resets it on close.
 *
 * @since 0.1.0
 * @category config
 */
export const openWaitSchedule = (config: CircuitBreakerConfig): Schedule.Schedule<unknown, unknown> => {
  if (config.waitDurationInOpenBackoff === "fixed") return Schedule.spaced(config.waitDurationInOpen)
  const base = Schedule.exponential(config.waitDurationInOpen, config.waitDurationInOpenMultiplier)
  const jittered = config.waitDurationInOpenJitter ? Schedule.jittered(base) : base
  const cap = config.maxWaitDurationInOpen
  return Schedule.modifyDelay(jittered, ({ duration }) => Effect.succeed(Duration.min(duration, cap)))
}

// -------------------------------------------------------------------------------------------------------------
// classification
// -------------------------------------------------------------------------------------------------------------

/**
 * How a call's outcome is recorded: `"failure"` counts against the server, `"success"` counts for it, and
 * `"ignore"` records nothing (a half-open probe slot is given back).
 *
 * @since 0.1.0
 * @category classification
 */
export type Verdict = "success" | "failure" | "ignore"

/**
 * Decides how a typed failure is recorded. Return `undefined` to fall back to {@link defaultClassifier}.
 *
 * @since 0.1.0
 * @category classification
 */
export type Classifier = (error: unknown) => Verdict | undefined

/**
 * The default classification of a typed failure, by `_tag` (never by message text):
 *
 * - `McpConnectError`, `McpTimeoutError`, `McpClosedError`, `McpProtocolError`: `"failure"`;
 * - `McpToolError` (the server answered, the tool reported an error): `"failure"` when
 *   `countToolErrors`, otherwise `"ignore"`;
 * - `CircuitOpenError` (a nested breaker rejected), `PoolTimeoutError`, `PoolClosedError`, `PoolUnknownServerError`
 *   (the client's own pool is saturated or closing, not the server's fault): `"ignore"`;
 * - anything else: `"failure"` — an unknown error is treated as a sign of trouble.
 *
 * Defects (`Effect.die`) count as failures; interruption is always ignored and never reaches a classifier.
 *
 * @since 0.1.0
 * @category classification
 */
export const defaultClassifier = (error: unknown, countToolErrors: boolean): Verdict => {
  const tag = typeof error === "object" && error !== null && "_tag" in error ? error._tag : undefined
  switch (tag) {
    case "McpConnectError":
    case "McpTimeoutError":
    case "McpClosedError":
    case "McpProtocolError":
      return "failure"
    case "McpToolError":
      return countToolErrors ? "failure" : "ignore"
    case "CircuitOpenError":
    // The pool's own errors say the client is saturated or shutting down, not that the server failed.
    case "PoolTimeoutError":
    case "PoolClosedError":
    case "PoolUnknownServerError":
      return "ignore"
    default:
      return "failure"
  }
}

// -------------------------------------------------------------------------------------------------------------
// errors and events
// -------------------------------------------------------------------------------------------------------------

/**
 * A call was rejected without running: the breaker for `server` is open (or half-open with every probe slot
 * taken, or forced open). `nextProbeAt` (epoch millis) is when a probe will be allowed, when known.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitOpenError extends Schema.TaggedError<CircuitOpenError>()("CircuitOpenError", {
  server: Schema.String,
  state: Schema.Literals(["Open", "HalfOpen", "ForcedOpen"]),
  nextProbeAt: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

/**
 * The breaker changed state.
 *
 * @since 0.1.0
 * @category events
 */
export interface StateTransition {
  readonly _tag: "StateTransition"
  readonly server: string
  readonly from: CircuitState
  readonly to: CircuitState
  /** Epoch millis of the transition (for timed transitions, the moment the wait ended). */
  readonly at: number
  readonly reason: TransitionReason
}

/**
 * A call finished and was recorded. `outcome` is its verdict; `slow` whether it exceeded `slowCallDuration`.
 *
 * @since 0.1.0
 * @category events
 */
export interface CallRecorded {
  readonly _tag: "CallRecorded"
  readonly server: string
  readonly outcome: Verdict
  readonly slow: boolean
  readonly durationMs: number
  readonly at: number
  /** The typed error or defect, when the call failed. */
  readonly error?: unknown
}

/**
 * A call was rejected without running.
 *
 * @since 0.1.0
 * @category events
 */
export interface CallRejected {
  readonly _tag: "CallRejected"
  readonly server: string
  readonly state: CircuitState
  readonly at: number
  readonly nextProbeAt: number | undefined
}

/**
 * Everything a breaker publishes.
 *
 * @since 0.1.0
 * @category events
 */
export type CircuitBreakerEvent = StateTransition | CallRecorded | CallRejected

/**
 * A snapshot of a breaker's counters. Lifetime counters never reset; the `window*` figures cover the
 * current sliding window (cleared when the breaker closes).
 *
 * Seed names: `TotalRequests` → `totalCalls`, `SuccessfulRequests` → `successfulCalls`,
 * `FailedRequests` → `failedCalls`, `FailureRate` → `failureRate` (over the window, not the lifetime).
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreakerStats {
  readonly server: string
  readonly state: CircuitState
  /** Calls that ran and finished (successful + failed + ignored). */
  readonly totalCalls: number
  readonly successfulCalls: number
  readonly failedCalls: number
  readonly slowCalls: number
  readonly ignoredCalls: number
  readonly rejectedCalls: number
  /** Recorded calls in the sliding window. */
  readonly windowCalls: number
  readonly windowFailures: number
  readonly windowSlowCalls: number
  /** `windowFailures / windowCalls` (0 when the window is empty). */
  readonly failureRate: number
  /** `windowSlowCalls / windowCalls` (0 when the window is empty). */
  readonly slowCallRate: number
  readonly consecutiveFailures: number
  /** Consecutive openings since the last close (drives the backoff). */
  readonly openings: number
  /** When Open: epoch millis when the next probe is allowed. */
  readonly nextProbeAt: number | undefined
}

// -------------------------------------------------------------------------------------------------------------
// metrics
// -------------------------------------------------------------------------------------------------------------

/**
 * `keel_circuit_breaker_state{server}`: 0 closed, 1 open, 2 half-open (3 forced-open, 4 disabled,
 * 5 metrics-only).
 *
 * @since 0.1.0
 * @category metrics
 */
export const stateGauge = Metric.gauge("keel_circuit_breaker_state", {
  description: "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced-open, 4 disabled, 5 metrics-only"
})

/**
 * `keel_circuit_breaker_calls{server,outcome}` with outcome `success`, `failure`, `slow`, `rejected` or
 * `ignored`. A slow call is counted as `slow` and also as its verdict.
 *
 * @since 0.1.0
 * @category metrics
 */
export const callsCounter = Metric.counter("keel_circuit_breaker_calls", {
  description: "Calls through the circuit breaker by outcome",
  incremental: true
})

/**
 * `keel_circuit_breaker_transitions{server,from,to}`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const transitionsCounter = Metric.counter("keel_circuit_breaker_transitions", {
  description: "Circuit breaker state transitions",
  incremental: true
})

// -------------------------------------------------------------------------------------------------------------
// sliding windows (mutated only inside synchronous sections)
// -------------------------------------------------------------------------------------------------------------

interface Window {
  calls: number
  failures: number
  slow: number
  record(failure: boolean, slow: boolean, now: number): void
  refresh(now: number): void
  reset(): void
}

class CountWindow implements Window {
  calls = 0
  failures = 0
  slow = 0
  readonly size: number
  readonly slots: Uint8Array // 0 empty, bit0 filled, bit1 failure, bit2 slow
  index = 0
  constructor(size: number) {
    this.size = size
    this.slots = new Uint8Array(size)
  }
  record(failure: boolean, slow: boolean, _now: number): void {
    const old = this.slots[this.index]!
    if (old !== 0) {
      this.calls--
      if (old & 2) this.failures--
      if (old & 4) this.slow--
    }
    this.slots[this.index] = 1 | (failure ? 2 : 0) | (slow ? 4 : 0)
    this.calls++
    if (failure) this.failures++
    if (slow) this.slow++
    this.index = this.index + 1 === this.size ? 0 : this.index + 1
  }
  refresh(_now: number): void {}
  reset(): void {
    this.slots.fill(0)
    this.index = 0
    this.calls = this.failures = this.slow = 0
  }
}

class TimeWindow implements Window {
  calls = 0
  failures = 0
  slow = 0
  readonly size: number
  readonly bucketCalls: Float64Array
  readonly bucketFailures: Float64Array
  readonly bucketSlow: Float64Array
  lastSecond = -Infinity
  constructor(seconds: number) {
    this.size = seconds
    this.bucketCalls = new Float64Array(seconds)
    this.bucketFailures = new Float64Array(seconds)
    this.bucketSlow = new Float64Array(seconds)
  }
  refresh(now: number): void {
    const second = Math.floor(now / 1000)
    if (second <= this.lastSecond) return
    if (second - this.lastSecond >= this.size) {
      this.bucketCalls.fill(0)
      this.bucketFailures.fill(0)
      this.bucketSlow.fill(0)
      this.calls = this.failures = this.slow = 0
    } else {
      for (let s = this.lastSecond + 1; s <= second; s++) {
        const b = s % this.size
        this.calls -= this.bucketCalls[b]!
        this.failures -= this.bucketFailures[b]!
        this.slow -= this.bucketSlow[b]!
        this.bucketCalls[b] = this.bucketFailures[b] = this.bucketSlow[b] = 0
      }
    }
    this.lastSecond = second
  }
  record(failure: boolean, slow: boolean, now: number): void {
    this.refresh(now)
    const b = Math.max(this.lastSecond, 0) % this.size
    this.bucketCalls[b]!++
    this.calls++
    if (failure) {
      this.bucketFailures[b]!++
      this.failures++
    }
    if (slow) {
      this.bucketSlow[b]!++
      this.slow++
    }
  }
  reset(): void {
    this.bucketCalls.fill(0)
    this.bucketFailures.fill(0)
    this.bucketSlow.fill(0)
    this.calls = this.failures = this.slow = 0
  }
}

// -------------------------------------------------------------------------------------------------------------
// the state machine
// -------------------------------------------------------------------------------------------------------------

/**
 * The immutable part of a breaker's state, held in a `Ref` and swapped on every transition. `generation`
 * increases on each transition, so an outcome only affects the state its call was admitted in.
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitStatus {
  readonly state: CircuitState
  readonly generation: number
  /** Epoch millis the state was entered. */
  readonly since: number
  /** Open: when probing may start. HalfOpen: when it reopens without a decision. Otherwise `Infinity`. */
  readonly deadline: number
  /** Consecutive openings since the last close. */
  readonly openings: number
}

/**
 * Options for {@link make} beyond the Schema config: things a Schema cannot hold.
 *
 * @since 0.1.0
 * @category constructors
 */
export interface MakeOptions {
  /** Overrides the wait-in-Open schedule built from the config (see {@link openWaitSchedule}). */
  readonly openSchedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** Classifies typed failures; `undefined` answers fall back to {@link defaultClassifier}. */
  readonly classify?: Classifier | undefined
}

/**
 * One breaker, guarding one server.
 *
 * @since 0.1.0
 * @category models
 */
export interface Breaker {
  /** The server this breaker guards. */
  readonly server: string
  /** The resolved configuration. */
  readonly config: CircuitBreakerConfig
  /** Runs `self` if the breaker admits it (seed: `Execute`), recording its outcome; else fails fast. */
  readonly execute: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpenError, R>
  /** The current state, computed from the clock (an elapsed Open wait reads as HalfOpen). Seed: `State`. */
  readonly state: Effect.Effect<CircuitState>
  /** The full status (state, generation, deadline, openings). */
  readonly status: Effect.Effect<CircuitStatus>
  /** Counters and window rates. Seed: `GetMetrics`. */
  readonly stats: Effect.Effect<CircuitBreakerStats>
  /** Every event from the moment the stream starts. */
  readonly events: Stream.Stream<CircuitBreakerEvent>
  /** State transitions only. */
  readonly transitions: Stream.Stream<StateTransition>
  /** A subscription taken now, so no event after this returns is missed. */
  readonly subscribe: Effect.Effect<PubSub.Subscription<CircuitBreakerEvent>, never, Scope.Scope>
  /**
   * Runs `f` for each transition in a fiber tied to the scope (seed: `OnStateChange`). Subscribes before
   * returning. `f` may use the breaker freely (no lock is held).
   */
  readonly onStateChange: <R>(
    f: (transition: StateTransition) => Effect.Effect<void, never, R> | void
  ) => Effect.Effect<void, never, Scope.Scope | R>
  /** Forces the breaker open (ForcedOpen) until `reset`: every call is rejected. */
  readonly isolate: Effect.Effect<void>
  /** Disables the breaker until `reset`: every call passes, nothing is recorded. */
  readonly disable: Effect.Effect<void>
  /** Records outcomes, emits events and metrics, but never opens, until `reset`. */
  readonly metricsOnly: Effect.Effect<void>
  /** Back to Closed with an empty window and the backoff reset. */
  readonly reset: Effect.Effect<void>
}

/**
 * A PubSub of events that knows how many subscriptions are open, so per-call events are only built and
 * published when someone listens.
 */
class EventHub {
  readonly pubsub: PubSub.PubSub<CircuitBreakerEvent> = Effect.runSync(PubSub.unbounded<CircuitBreakerEvent>())
  listeners = 0
  readonly subscribe: Effect.Effect<PubSub.Subscription<CircuitBreakerEvent>, never, Scope.Scope> = Effect
    .uninterruptible(
      Effect.tap(PubSub.subscribe(this.pubsub), () => {
        this.listeners++
        return Effect.addFinalizer(() => Effect.sync(() => this.listeners--))
      })
    )
  readonly stream: Stream.Stream<CircuitBreakerEvent> = Stream.unwrap(
    Effect.map(this.subscribe, Stream.fromSubscription)
  )
}

/** @internal */
const REJECTED = -1
/** @internal Admitted while Disabled: run, record nothing. */
const UNRECORDED = -2

class BreakerCore {
  readonly server: string
  readonly config: CircuitBreakerConfig
  readonly status: Ref.Ref<CircuitStatus>
  readonly window: Window
  readonly clock: Clock.Clock
  readonly context: Context.Context<never>
  readonly hub: EventHub
  readonly sinks: ReadonlyArray<EventHub>
  readonly schedule: Schedule.Schedule<unknown, unknown>
  readonly classify: Classifier | undefined
  readonly effectiveMinimumCalls: number
  readonly slowMillis: number
  readonly halfOpenMaxWaitMillis: number
  readonly slowProbeLimit: number
  // metrics, pre-bound to this server
  readonly mSuccess: Metric.Metric<number, unknown>
  readonly mFailure: Metric.Metric<number, unknown>
  readonly mSlow: Metric.Metric<number, unknown>
  readonly mRejected: Metric.Metric<number, unknown>
  readonly mIgnored: Metric.Metric<number, unknown>
  readonly mState: Metric.Metric<number, unknown>
  // mutable counters
  consecutiveFailures = 0
  halfOpenUsed = 0
  halfOpenSuccesses = 0
  halfOpenSlow = 0
  total = 0
  successful = 0
  failed = 0
  slowTotal = 0
  ignored = 0
  rejected = 0
  step: ((now: number, input: unknown) => Effect.Effect<[unknown, Duration.Duration], unknown>) | undefined
  lastWait = 0
  timer: Fiber.Fiber<void> | undefined
  closed = false

  constructor(
    server: string,
    config: CircuitBreakerConfig,
    options: MakeOptions,
    clock: Clock.Clock,
    context: Context.Context<never>,
    hub: EventHub,
    sinks: ReadonlyArray<EventHub>
  ) {
    this.server = server
    this.config = config
    this.clock = clock
    this.context = context
    this.hub = hub
    this.sinks = sinks
    this.schedule = options.openSchedule ?? openWaitSchedule(config)
    this.classify = options.classify
    this.window = config.slidingWindowType === "count"
      ? new CountWindow(config.slidingWindowSize)
      : new TimeWindow(config.slidingWindowSize)
    this.effectiveMinimumCalls = config.slidingWindowType === "count"
      ? Math.min(config.minimumNumberOfCalls, config.slidingWindowSize)
      : config.minimumNumberOfCalls
    this.slowMillis = Duration.toMillis(config.slowCallDuration)
    this.halfOpenMaxWaitMillis = Duration.toMillis(config.maxWaitDurationInHalfOpen)
    this.slowProbeLimit = Math.max(1, Math.ceil(config.slowCallRateThreshold * config.permittedCallsInHalfOpen))
    const calls = (outcome: string) => Metric.withAttributes(callsCounter, { server, outcome })
    this.mSuccess = calls("success")
    this.mFailure = calls("failure")
    this.mSlow = calls("slow")
    this.mRejected = calls("rejected")
    this.mIgnored = calls("ignored")
    this.mState = Metric.withAttributes(stateGauge, { server })
    const now = clock.currentTimeMillisUnsafe()
    this.status = Ref.makeUnsafe<CircuitStatus>({
      state: "Closed",
      generation: 0,
      since: now,
      deadline: Infinity,
      openings: 0
    })
    this.mState.updateUnsafe(0, context)
  }

  // --- publishing ---------------------------------------------------------------------------------------------

  get hasListeners(): boolean {
    if (this.hub.listeners > 0) return true
    for (const sink of this.sinks) if (sink.listeners > 0) return true
    return false
  }

  publish(event: CircuitBreakerEvent): void {
    PubSub.publishUnsafe(this.hub.pubsub, event)
    for (const sink of this.sinks) PubSub.publishUnsafe(sink.pubsub, event)
  }

  // --- transitions -------------------------------------------------------------------------------------------

  nextWait(at: number, openings: number): number {
    try {
      if (this.step === undefined) {
        this.step = Effect.runSyncWith(this.context)(Schedule.toStep(this.schedule)) as any
      }
      const exit = Effect.runSyncExitWith(this.context)(this.step!(at, openings))
      if (Exit.isSuccess(exit)) this.lastWait = Duration.toMillis(exit.value[1])
    } catch {
      // an asynchronous or failing schedule: keep the previous wait
    }
    if (this.lastWait <= 0 && openings === 1) this.lastWait = Duration.toMillis(this.config.waitDurationInOpen)
    return this.lastWait
  }

  transition(to: CircuitState, at: number, reason: TransitionReason): void {
    const from = this.status.ref.current
    let deadline = Infinity
    let openings = from.openings
    if (to === "Open") {
      openings++
      deadline = at + this.nextWait(at, openings)
    } else if (to === "HalfOpen") {
      // No deadline until the first probe is admitted (see tryAcquire): with no traffic the breaker waits
      // half-open, so the first call after a quiet period is a probe, not a rejection, and the wait in Open
      // does not grow while nobody calls.
      deadline = Infinity
    } else if (to === "Closed") {
      openings = 0
      this.step = undefined
      this.lastWait = 0
    }
    if (to === "Closed" || to === "MetricsOnly") {
      this.window.reset()
      this.consecutiveFailures = 0
    }
    if (to === "HalfOpen") {
      this.halfOpenUsed = 0
      this.halfOpenSuccesses = 0
      this.halfOpenSlow = 0
    }
    this.status.ref.current = { state: to, generation: from.generation + 1, since: at, deadline, openings }
    this.mState.updateUnsafe(stateGaugeValue[to], this.context)
    Metric.withAttributes(transitionsCounter, { server: this.server, from: from.state, to }).updateUnsafe(
      1,
      this.context
    )
    this.publish({ _tag: "StateTransition", server: this.server, from: from.state, to, at, reason })
    this.scheduleTimer(deadline)
  }

  /** Applies the timed transitions (Open → HalfOpen, HalfOpen → Open) that are due at `now`. */
  advance(now: number): CircuitStatus {
    let s = this.status.ref.current
    while (now >= s.deadline) {
      if (s.state === "Open") this.transition("HalfOpen", s.deadline, "WaitElapsed")
      else if (s.state === "HalfOpen") this.transition("Open", s.deadline, "HalfOpenMaxWait")
      else break
      s = this.status.ref.current
    }
    return s
  }

  scheduleTimer(deadline: number): void {
    if (this.timer !== undefined) {
      this.timer.interruptUnsafe()
      this.timer = undefined
    }
    if (deadline === Infinity || this.closed) return
    const delay = Math.max(0, deadline - this.clock.currentTimeMillisUnsafe())
    this.timer = Effect.runForkWith(this.context)(
      Effect.flatMap(this.clock.sleep(Duration.millis(delay)), () =>
        Effect.sync(() => {
          this.timer = undefined
          this.advance(this.clock.currentTimeMillisUnsafe())
        }))
    )
  }

  // --- admission and recording -------------------------------------------------------------------------------

  /** Returns the generation the call is admitted in, or `REJECTED` / `UNRECORDED`. */
  tryAcquire(now: number): number {
    let s = this.status.ref.current
    switch (s.state) {
      case "Closed":
      case "MetricsOnly":
        return s.generation
      case "Disabled":
        return UNRECORDED
      case "ForcedOpen":
        return this.reject(s, now)
      default:
        s = this.advance(now)
        if (s.state === "HalfOpen" && this.halfOpenUsed < this.config.permittedCallsInHalfOpen) {
          if (this.halfOpenUsed++ === 0 && s.deadline === Infinity) {
            // The first probe starts the max wait: without a decision by then, the breaker reopens.
            const deadline = now + this.halfOpenMaxWaitMillis
            this.status.ref.current = { ...s, deadline }
            this.scheduleTimer(deadline)
          }
          return s.generation
        }
        return this.reject(s, now)
    }
  }

  reject(s: CircuitStatus, now: number): number {
    this.rejected++
    this.mRejected.updateUnsafe(1, this.context)
    if (this.hasListeners) {
      this.publish({
        _tag: "CallRejected",
        server: this.server,
        state: s.state,
        at: now,
        nextProbeAt: s.state === "Open" ? s.deadline : undefined
      })
    }
    return REJECTED
  }

  rejection(now: number): CircuitOpenError {
    const s = this.status.ref.current
    const state = s.state === "Open" || s.state === "HalfOpen" ? s.state : "ForcedOpen"
    const nextProbeAt = s.state === "Open" ? s.deadline : undefined
    // A rejection's stack trace would only show the breaker's internals, and capturing it costs ~5 µs:
    // build the error without one (as Effect does for its own internal errors).
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      return new CircuitOpenError({
        server: this.server,
        state,
        nextProbeAt,
        message: state === "Open"
          ? `circuit breaker for "${this.server}" is open; next probe in ${s.deadline - now} ms`
          : state === "HalfOpen"
          ? `circuit breaker for "${this.server}" is half-open and all probe slots are taken`
          : `circuit breaker for "${this.server}" is forced open`
      }, { disableChecks: true })
    } finally {
      Error.stackTraceLimit = limit
    }
  }

  verdict(exit: Exit.Exit<unknown, unknown>): Verdict {
    if (exit._tag === "Success") return "success"
    const cause = exit.cause
    if (Cause.hasInterruptsOnly(cause)) return "ignore"
    const error = Cause.findErrorOption(cause)
    if (error._tag === "None") return "failure" // a defect
    if (this.classify !== undefined) {
      const v = this.classify(error.value)
      if (v !== undefined) return v
    }
    return defaultClassifier(error.value, this.config.countToolErrors)
  }

  complete(generation: number, start: number, exit: Exit.Exit<unknown, unknown>): void {
    const now = this.clock.currentTimeMillisUnsafe()
    const duration = now - start
    const verdict = this.verdict(exit)
    const slow = verdict !== "ignore" && duration > this.slowMillis
    // lifetime counters and metrics
    this.total++
    if (verdict === "success") {
      this.successful++
      this.mSuccess.updateUnsafe(1, this.context)
    } else if (verdict === "failure") {
      this.failed++
      this.mFailure.updateUnsafe(1, this.context)
    } else {
      this.ignored++
      this.mIgnored.updateUnsafe(1, this.context)
    }
    if (slow) {
      this.slowTotal++
      this.mSlow.updateUnsafe(1, this.context)
    }
    if (this.hasListeners) {
      const event: CallRecorded = exit._tag === "Failure" && verdict !== "success"
        ? {
          _tag: "CallRecorded",
          server: this.server,
          outcome: verdict,
          slow,
          durationMs: duration,
          at: now,
          error: Cause.squash(exit.cause)
        }
        : { _tag: "CallRecorded", server: this.server, outcome: verdict, slow, durationMs: duration, at: now }
      this.publish(event)
    }
    // timed transitions due before this completion come first (e.g. the HalfOpen max wait ran out)
    const s = this.advance(now)
    if (s.generation !== generation) return // admitted in an earlier state: its outcome no longer applies
    const failure = verdict === "failure"
    if (s.state === "Closed" || s.state === "MetricsOnly") {
      if (verdict === "ignore") return
      this.window.record(failure, slow, now)
      this.consecutiveFailures = failure ? this.consecutiveFailures + 1 : 0
      if (s.state === "MetricsOnly") return
      const threshold = this.config.consecutiveFailureThreshold
      if (threshold > 0 && this.consecutiveFailures >= threshold) {
        this.transition("Open", now, "ConsecutiveFailures")
      } else if (this.window.calls >= this.effectiveMinimumCalls) {
        if (this.window.failures / this.window.calls >= this.config.failureRateThreshold) {
          this.transition("Open", now, "FailureRate")
        } else if (this.window.slow / this.window.calls >= this.config.slowCallRateThreshold) {
          this.transition("Open", now, "SlowCallRate")
        }
      }
    } else if (s.state === "HalfOpen") {
      if (verdict === "ignore") {
        this.halfOpenUsed--
      } else if (failure) {
        this.transition("Open", now, "ProbeFailed")
      } else if (slow && ++this.halfOpenSlow >= this.slowProbeLimit) {
        this.transition("Open", now, "SlowProbes")
      } else if (++this.halfOpenSuccesses >= this.config.successThresholdToClose) {
        this.transition("Closed", now, "ProbesSucceeded")
      }
    }
  }

  stats(): CircuitBreakerStats {
    const now = this.clock.currentTimeMillisUnsafe()
    const s = this.advance(now)
    this.window.refresh(now)
    const w = this.window
    return {
      server: this.server,
      state: s.state,
      totalCalls: this.total,
      successfulCalls: this.successful,
      failedCalls: this.failed,
      slowCalls: this.slowTotal,
      ignoredCalls: this.ignored,
      rejectedCalls: this.rejected,
      windowCalls: w.calls,
      windowFailures: w.failures,
      windowSlowCalls: w.slow,
      failureRate: w.calls === 0 ? 0 : w.failures / w.calls,
      slowCallRate: w.calls === 0 ? 0 : w.slow / w.calls,
      consecutiveFailures: this.consecutiveFailures,
      openings: s.openings,
      nextProbeAt: s.state === "Open" ? s.deadline : undefined
    }
  }

  manual(to: CircuitState): void {
    const now = this.clock.currentTimeMillisUnsafe()
    this.advance(now)
    this.transition(to, now, "Manual")
  }

  shutdown(): void {
    this.closed = true
    if (this.timer !== undefined) this.timer.interruptUnsafe()
    this.timer = undefined
  }

  // --- the Effect surface ------------------------------------------------------------------------------------

  execute<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R> {
    return Effect.uninterruptibleMask((restore): Effect.Effect<A, E | CircuitOpenError, R> => {
      const start = this.clock.currentTimeMillisUnsafe()
      const generation = this.tryAcquire(start)
      if (generation >= 0) {
        return Effect.onExit(restore(self), (exit) => {
          this.complete(generation, start, exit)
          return Effect.void
        })
      }
      if (generation === UNRECORDED) return restore(self)
      return Effect.fail(this.rejection(start))
    })
  }
}

const isTransition = (e: CircuitBreakerEvent): e is StateTransition => e._tag === "StateTransition"

const makeBreaker = (
  server: string,
  input: CircuitBreakerConfigInput | CircuitBreakerConfig,
  options: MakeOptions,
  clock: Clock.Clock,
  context: Context.Context<never>,
  sinks: ReadonlyArray<EventHub>
): { readonly breaker: Breaker; readonly core: BreakerCore } => {
  const config = resolveConfig(input as CircuitBreakerConfigInput)
  const hub = new EventHub()
  const core = new BreakerCore(server, config, options, clock, context, hub, sinks)
  const subscribe = hub.subscribe
  const breaker: Breaker = {
    server,
    config,
    execute: (self) => core.execute(self),
    state: Effect.sync(() => core.advance(clock.currentTimeMillisUnsafe()).state),
    status: Effect.sync(() => core.advance(clock.currentTimeMillisUnsafe())),
    stats: Effect.sync(() => core.stats()),
    events: hub.stream,
    transitions: Stream.filter(hub.stream, isTransition),
    subscribe,
    onStateChange: (f) =>
      Effect.flatMap(subscribe, (subscription) =>
        Stream.fromSubscription(subscription).pipe(
          Stream.filter(isTransition),
          Stream.runForEach((t) => {
            const r = f(t)
            return r === undefined ? Effect.void : r
          }),
          Effect.forkScoped,
          Effect.asVoid
        )),
    isolate: Effect.sync(() => core.manual("ForcedOpen")),
    disable: Effect.sync(() => core.manual("Disabled")),
    metricsOnly: Effect.sync(() => core.manual("MetricsOnly")),
    reset: Effect.sync(() => core.manual("Closed"))
  }
  return { breaker, core }
}

// -------------------------------------------------------------------------------------------------------------
// constructors and services
// -------------------------------------------------------------------------------------------------------------

/**
 * Makes a breaker for `server`. Time comes from the `Clock` and metrics go to the registry of the context
 * `make` runs in. The scope ends the breaker's timer fiber and event stream. Dies if the config is invalid.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  server: string,
  config: CircuitBreakerConfigInput = {},
  options: MakeOptions = {}
): Effect.Effect<Breaker, never, Scope.Scope> =>
  Effect.flatMap(Effect.context<never>(), (context) =>
    Effect.acquireRelease(
      Effect.sync(() =>
        makeBreaker(server, config, options, Context.get(context, Clock.Clock), context, [])
      ),
      ({ core }) =>
        Effect.sync(() => core.shutdown()).pipe(Effect.andThen(PubSub.shutdown(core.hub.pubsub)))
    ).pipe(Effect.map(({ breaker }) => breaker)))

/**
 * A single breaker as a service, for code that guards one server.
 *
 * @since 0.1.0
 * @category services
 */
export class CircuitBreaker extends Context.Service<CircuitBreaker, Breaker>()("@keel/core/CircuitBreaker") {
  /** A layer providing a breaker for `server`. */
  static readonly layer = (
    server: string,
    config: CircuitBreakerConfigInput = {},
    options: MakeOptions = {}
  ): Layer.Layer<CircuitBreaker> => Layer.effect(CircuitBreaker, make(server, config, options))
  /** Same as the module's {@link make}. */
  static readonly make = make
}

/**
 * Options for a {@link CircuitBreakerRegistry}: defaults for every server, and per-server overrides.
 *
 * @since 0.1.0
 * @category registry
 */
export interface RegistryOptions extends MakeOptions {
  readonly defaults?: CircuitBreakerConfigInput | undefined
  readonly servers?: { readonly [server: string]: CircuitBreakerConfigInput } | undefined
}

/**
 * Breakers per server, made on first use, so one bad server never blocks the others.
 *
 * @since 0.1.0
 * @category registry
 */
export interface Registry {
  /** The breaker for `server` (made on first use). */
  readonly get: (server: string) => Effect.Effect<Breaker>
  /**
   * Makes the breaker for `server` from `defaults` ⊕ `servers[server]` ⊕ `config`, replacing (and shutting
   * down) any previous breaker of that name. A bad setting fails with {@link McpConfigError}.
   */
  readonly add: (server: string, config?: CircuitBreakerConfigInput) => Effect.Effect<Breaker, McpConfigError>
  /** Shuts down and forgets the breaker for `server` (nothing happens when there is none). */
  readonly remove: (server: string) => Effect.Effect<void>
  /** Runs `self` through the breaker for `server`. */
  readonly execute: <A, E, R>(
    server: string,
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | CircuitOpenError, R>
  /** The state of every breaker made so far. */
  readonly states: Effect.Effect<ReadonlyMap<string, CircuitState>>
  /** Stats of every breaker made so far. */
  readonly stats: Effect.Effect<ReadonlyArray<CircuitBreakerStats>>
  /** Events of every breaker (each event carries its `server`). */
  readonly events: Stream.Stream<CircuitBreakerEvent>
  /** A subscription to every breaker's events, taken now. */
  readonly subscribe: Effect.Effect<PubSub.Subscription<CircuitBreakerEvent>, never, Scope.Scope>
}

/**
 * Makes a registry. Breakers live as long as the scope.
 *
 * @since 0.1.0
 * @category registry
 */
export const makeRegistry = (options: RegistryOptions = {}): Effect.Effect<Registry, never, Scope.Scope> =>
  Effect.flatMap(Effect.context<never>(), (context) =>
    Effect.flatMap(
      Effect.acquireRelease(
        Effect.sync(() => ({
          hub: new EventHub(),
          breakers: new Map<string, { readonly breaker: Breaker; readonly core: BreakerCore }>()
        })),
        ({ breakers, hub }) =>
          Effect.suspend(() => {
            for (const { core } of breakers.values()) core.shutdown()
            return Effect.andThen(
              Effect.forEach(breakers.values(), ({ core }) => PubSub.shutdown(core.hub.pubsub), { discard: true }),
              PubSub.shutdown(hub.pubsub)
            )
          })
      ),
      ({ breakers, hub }) => {
        const clock = Context.get(context, Clock.Clock)
        const getUnsafe = (server: string) => {
          let entry = breakers.get(server)
          if (entry === undefined) {
            const config = { ...options.defaults, ...options.servers?.[server] }
            entry = makeBreaker(server, config, options, clock, context, [hub])
            breakers.set(server, entry)
          }
          return entry.breaker
        }
        const shutdownEntry = (entry: { readonly core: BreakerCore }) =>
          Effect.suspend(() => {
            entry.core.shutdown()
            return PubSub.shutdown(entry.core.hub.pubsub)
          })
        const registry: Registry = {
          get: (server) => Effect.sync(() => getUnsafe(server)),
          add: (server, config) =>
            Effect.flatMap(
              decode({ ...options.defaults, ...options.servers?.[server], ...config }),
              (resolved) =>
                Effect.suspend(() => {
                  const previous = breakers.get(server)
                  const entry = makeBreaker(server, resolved, options, clock, context, [hub])
                  breakers.set(server, entry)
                  return previous === undefined
                    ? Effect.succeed(entry.breaker)
                    : Effect.as(shutdownEntry(previous), entry.breaker)
                })
            ),
          remove: (server) =>
            Effect.suspend(() => {
              const previous = breakers.get(server)
              if (previous === undefined) return Effect.void
              breakers.delete(server)
              return shutdownEntry(previous)
            }),
          execute: (server, self) => Effect.suspend(() => getUnsafe(server).execute(self)),
          states: Effect.sync(() => {
            const now = clock.currentTimeMillisUnsafe()
            const out = new Map<string, CircuitState>()
            for (const [server, { core }] of breakers) out.set(server, core.advance(now).state)
            return out
          }),
          stats: Effect.sync(() => Array.from(breakers.values(), ({ core }) => core.stats())),
          events: hub.stream,
          subscribe: hub.subscribe
        }
        return Effect.succeed(registry)
      }
    ))

/**
 * The per-server breaker registry as a service.
 *
 * @since 0.1.0
 * @category registry
 */
export class CircuitBreakerRegistry
  extends Context.Service<CircuitBreakerRegistry, Registry>()("@keel/core/CircuitBreakerRegistry")
{
  /** A layer providing the registry. */
  static readonly layer = (options: RegistryOptions = {}): Layer.Layer<CircuitBreakerRegistry> =>
    Layer.effect(CircuitBreakerRegistry, makeRegistry(options))
  /** Same as {@link makeRegistry}. */
  static readonly make = makeRegistry
}
