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
 *   ×`waitDurationInOpenMultiplier` with optional jitter, capped) stepped once per consecutive opening (a
 *   failed probe, or the half-open max wait running out), so a breaker that reopens waits longer; closing
 *   starts the schedule afresh. When the wait ends the breaker is **HalfOpen**, even if no call arrives:
 *   every read applies the timed transitions due by the `Clock`, and a timer fiber publishes them.
 * - **HalfOpen** — exactly `permittedCallsInHalfOpen` probes are admitted (atomically, however many fibers
 *   race). Any counted failure reopens; `successThresholdToClose` successful probes close. After
 *   `maxWaitDurationInHalfOpen` from the first probe without a decision the breaker reopens, so it is never
 *   stuck half-open; with no traffic it waits half-open, so the first call after a quiet period is a probe.
 * - Manual states: **ForcedOpen** (`isolate`), **Disabled** (`disable`, everything passes, nothing is
 *   recorded) and **MetricsOnly** (`metricsOnly`, everything passes, outcomes are recorded, never opens).
 *
 * Interruption never counts as a failure: an interrupted call is "ignored" (a half-open probe slot is given
 * back). Errors are classified by their `_tag`, never by message text.
 *
 * How it is built: the rules are the pure functions of `CircuitBreakerMachine.ts`
 * (`(state, event, now) → [output, state]`). A breaker holds its whole state (automaton, window, counters)
 * in one `Ref` changed only with `Ref.modify`: one `modify` admits a call, one records its outcome, so
 * admission is atomic. A closed breaker with nothing due is the exception that writes nothing: admission
 * there leaves the state as it is, so it is a plain read, and only the outcome goes through `Ref.modify`
 * (closed-path overhead 0.89 µs median against opossum's 0.97 µs in the same benchmark run,
 * bench/RESULTS-circuit-breaker.md; two `modify`s measured 1.46–1.61 µs). The per-call counters are
 * updated in a two-entry context, and a count window that replaces an outcome with an equal one shares its
 * slots. The fused `callTool` step's `recordUnsafe` applies the same completion step to
 * the `Ref`'s value in place (Effect 4.1 has `Ref.getUnsafe` but no synchronous modify). The shell around it
 * publishes the transitions a step reports (events, metrics),
 * keeps one timer fiber on the current deadline, and steps the Open-wait `Schedule` in Effect after every
 * opening and close, handing the next wait back to the machine (so the machine never runs an effect, and
 * the schedule may draw jitter from `Random`). Config decoding is an Effect failing with `McpConfigError`.
 *
 * Why not Effect's own `effect/unstable/persistence` `CircuitBreaker`: it has `consecutive` and `rate` trip
 * policies and a `Schedule` open duration, but no slow-call rate, no multi-permit half-open with a success
 * threshold, no half-open max wait and no manual states, all of which Keel's tests pin (and the seed asks for
 * `MaxHalfOpenRequests` / `SuccessThreshold`). For several replicas, Keel shares this breaker's transitions
 * through Redis instead (`SharedBreakers`), so the closed path pays no round trip.
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
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as PubSub from "effect/PubSub"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Machine from "./CircuitBreakerMachine.ts"
import * as ConfigSchema from "./ConfigSchema.ts"
import { McpConfigError } from "./ConfigSchema.ts"
import { isCallerRefusal } from "./McpError.ts"

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
export type CircuitState = Machine.CircuitState

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
export type TransitionReason = Machine.TransitionReason

// -------------------------------------------------------------------------------------------------------------
// config
// -------------------------------------------------------------------------------------------------------------

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
  consecutiveFailureThreshold: ConfigSchema.IntAtLeast(0, 5),
  failureRateThreshold: ConfigSchema.Fraction(0.5),
  slidingWindowType: Schema.Literals(["count", "time"]).pipe(Schema.withDecodingDefaultKey(Effect.succeed("count"))),
  slidingWindowSize: ConfigSchema.IntAtLeast(1, 20),
  minimumNumberOfCalls: ConfigSchema.IntAtLeast(1, 10),
  slowCallDuration: ConfigSchema.Millis(60_000),
  slowCallRateThreshold: ConfigSchema.Fraction(1),
  waitDurationInOpen: ConfigSchema.Millis(10_000),
  waitDurationInOpenBackoff: Schema.Literals(["fixed", "exponential"]).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed("exponential"))
  ),
  waitDurationInOpenMultiplier: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(1)).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(2))
  ),
  maxWaitDurationInOpen: ConfigSchema.Millis(300_000),
  waitDurationInOpenJitter: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false))),
  permittedCallsInHalfOpen: ConfigSchema.IntAtLeast(1, 3),
  successThresholdToClose: ConfigSchema.IntAtLeast(1, 2),
  maxWaitDurationInHalfOpen: ConfigSchema.Millis(60_000),
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

const decodeSettings = ConfigSchema.decodeSettings(CircuitBreakerConfig, "breaker", durationKeys)

/**
 * Fills in defaults and validates, as an Effect (it never throws): an invalid setting fails with an
 * {@link McpConfigError} whose `path` names the field under `path` (default `"breaker"`), e.g.
 * `breaker.failureRateThreshold`. `successThresholdToClose` above `permittedCallsInHalfOpen` (the breaker
 * could never close) and a non-positive `maxWaitDurationInHalfOpen` are errors too. Accepts a decoded
 * config as well (its `Duration`s are valid inputs).
 *
 * @since 0.1.0
 * @category config
 */
export const resolveConfig = (
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
 * Same as {@link resolveConfig}.
 *
 * @since 0.2.0
 * @category config
 */
export const decode = resolveConfig

/**
 * The default configuration (see {@link CircuitBreakerConfig} for the values).
 *
 * @since 0.1.0
 * @category config
 */
export const defaultConfig: CircuitBreakerConfig = Schema.decodeUnknownSync(CircuitBreakerConfig)({})

/**
 * The `Schedule` a config describes for the wait in Open: `Schedule.spaced(waitDurationInOpen)` when
 * fixed, or `Schedule.exponential(waitDurationInOpen, multiplier)` (optionally jittered) capped at
 * `maxWaitDurationInOpen`. The breaker steps it (in Effect, with the `Random` and `Clock` of the context
 * the breaker was made in) once per consecutive opening, and starts it afresh on close.
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
export type Verdict = Machine.Verdict

/**
 * Decides how a typed failure is recorded. Return `undefined` to fall back to {@link defaultClassifier}.
 *
 * @since 0.1.0
 * @category classification
 */
export type Classifier = (error: unknown) => Verdict | undefined

/**
 * The default classification of a typed failure, by `_tag` and JSON-RPC code (never by message text):
 *
 * - `McpConnectError`, `McpTimeoutError`, `McpClosedError`, `McpProtocolError`: `"failure"`;
 * - `McpProtocolError` with code -32602 (invalid params: the caller's arguments were refused) or -32601
 *   (method not found: the caller asked for something the server does not offer): `"ignore"`, except a
 *   result that breaks the tool's own `outputSchema` (`isCallerRefusal`), which is the server's failure;
 * - `McpToolError` (the server answered, the tool reported an error): `"failure"` when
 *   `countToolErrors`, otherwise `"ignore"`;
 * - the caller's own mistakes (`InvalidArgumentsError`, `UnknownToolError`, `UnknownServerError`,
 *   `McpConfigError` for a bad call option), a tool whose definition is invalid (`InvalidToolError`), and
 *   `McpMessageTooLargeError` (the client's own size limit): `"ignore"`;
 * - authorization needed or refused (`AuthorizationRequiredError`, `McpAuthError`: 401/403, an OAuth error
 *   from the authorization server): `"ignore"` — not the server failing;
 * - `CircuitOpenError` (a nested breaker rejected), `PoolTimeoutError`, `PoolClosedError`
 *   (the client's own pool is saturated or closing, not the server's fault): `"ignore"`;
 * - anything else: `"failure"` — an unknown error is treated as a sign of trouble.
 *
 * Defects (`Effect.die`) count as failures; interruption is always ignored and never reaches a classifier.
 * A failure marked with {@link markUncounted} is ignored before any classifier sees it.
 *
 * @since 0.1.0
 * @category classification
 */
export const defaultClassifier = (error: unknown, countToolErrors: boolean): Verdict => {
  const tag = typeof error === "object" && error !== null && "_tag" in error ? error._tag : undefined
  switch (tag) {
    case "McpProtocolError":
      return isCallerRefusal(error as { readonly code?: unknown }) ? "ignore" : "failure"
    // McpConnectError, McpTimeoutError and McpClosedError are failures: the default below.
    case "McpToolError":
      return countToolErrors ? "failure" : "ignore"
    // The caller's own mistakes and the client's own limits are not the server's fault.
    case "InvalidArgumentsError":
    case "InvalidToolError":
    case "McpConfigError":
    case "UnknownToolError":
    case "UnknownServerError":
    case "McpMessageTooLargeError":
    case "AuthorizationRequiredError":
    case "McpAuthError":
    case "CircuitOpenError":
    // The pool's own errors say the client is saturated or shutting down, not that the server failed.
    case "PoolTimeoutError":
    case "PoolClosedError":
      return "ignore"
    default:
      return "failure"
  }
}

/** Failures already accounted for, recorded as `"ignore"` whatever the classifier says. */
const uncounted = new WeakSet<object>()

/**
 * Marks a failure as already counted: any breaker that sees it records it as `"ignore"`, before any
 * classifier. For the second and later in-flight calls that hit the same crashed session (one crash is one
 * failure), and for failures that are the caller's own budget (a deadline spent waiting for a session).
 * Returns the error. Costs nothing on the success path: only failures are looked up.
 *
 * @since 0.2.0
 * @category classification
 */
export const markUncounted = <E>(error: E): E => {
  if (typeof error === "object" && error !== null) uncounted.add(error)
  return error
}

/**
 * Whether {@link markUncounted} marked this failure.
 *
 * @since 0.2.0
 * @category classification
 */
export const isUncounted = (error: unknown): boolean =>
  typeof error === "object" && error !== null && uncounted.has(error)


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
  message: Schema.String,
  /**
   * The failure that opened the breaker (the error of the call recorded as the failure that tripped it, or
   * that failed the last half-open probe); `undefined` when forced open or opened by slow calls alone.
   */
  openedBy: Schema.optional(Schema.Unknown)
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
// breakers
// -------------------------------------------------------------------------------------------------------------

/**
 * The automaton part of a breaker's state (a view of the machine's {@link Machine.State}). `generation`
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
  /**
   * Overrides the wait-in-Open schedule built from the config (see {@link openWaitSchedule}). It is stepped
   * once per opening, ahead of it, with the opening's number (1, 2, … since the last close) as its input; a
   * delay of zero or less, or a schedule that is done or fails, leaves the previous wait in place.
   */
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
  /**
   * The hot path's synchronous permit (`McpClientManager.callTool`): when the breaker is closed (or
   * metrics-only) and nothing is due (no transition, no timer to move), the call's generation, to pass to
   * {@link recordUnsafe} with the call's start (`Clock` ms) when it ends; else `undefined`, and the call
   * takes {@link execute}. A closed breaker admits without a state change, so a permit not used needs no
   * release. Optional: a breaker without it is always run through `execute`.
   */
  readonly tryAcquireUnsafe?: (() => number | undefined) | undefined
  /**
   * Records the outcome of a call admitted by {@link tryAcquireUnsafe}, as `execute` does: the state,
   * counters and events synchronously; returns the effect of a resulting transition (or timer change) to
   * run, or `undefined` when there is none.
   */
  readonly recordUnsafe?: ((generation: number, start: number, exit: Exit.Exit<unknown, unknown>) => Effect.Effect<void> | undefined) | undefined
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


// -------------------------------------------------------------------------------------------------------------
// the effectful shell
// -------------------------------------------------------------------------------------------------------------

/** A PubSub of events and how many subscriptions are open, so per-call events are built only for listeners. */
interface Hub {
  readonly pubsub: PubSub.PubSub<CircuitBreakerEvent>
  listeners: number
}

const makeHub: Effect.Effect<Hub> = Effect.map(PubSub.unbounded<CircuitBreakerEvent>(), (pubsub) => ({
  pubsub,
  listeners: 0
}))

const subscribeHub = (hub: Hub): Effect.Effect<PubSub.Subscription<CircuitBreakerEvent>, never, Scope.Scope> =>
  Effect.uninterruptible(
    Effect.tap(PubSub.subscribe(hub.pubsub), () => {
      hub.listeners++
      return Effect.addFinalizer(() => Effect.sync(() => hub.listeners--))
    })
  )

const hubStream = (hub: Hub): Stream.Stream<CircuitBreakerEvent> =>
  Stream.unwrap(Effect.map(subscribeHub(hub), Stream.fromSubscription))

type WaitStep = (now: number, openings: number) => Effect.Effect<readonly [unknown, Duration.Duration], unknown>

/**
 * One breaker's shell: the `Ref` with the machine's state, what the machine was configured with, and the
 * effectful parts (timer, schedule step, events, metrics) that live beside it.
 */
interface Core {
  readonly server: string
  readonly config: CircuitBreakerConfig
  readonly settings: Machine.Settings
  readonly ref: Ref.Ref<Machine.State>
  readonly clock: Clock.Clock
  /** The context `make` ran in: metrics registry, `Random` and `Clock` for the schedule. */
  readonly context: Context.Context<never>
  readonly scope: Scope.Scope
  readonly schedule: Schedule.Schedule<unknown, unknown>
  readonly classify: Classifier | undefined
  readonly hub: Hub
  readonly sinks: ReadonlyArray<Hub>
  /**
   * The context the per-call counters are updated in: only {@link context}'s metric registry, and no extra
   * metric attributes (they are in the counters' own). A counter's update looks up both on every call.
   */
  readonly callContext: Context.Context<never>
  readonly mSuccess: Metric.Metric<number, unknown>
  readonly mFailure: Metric.Metric<number, unknown>
  readonly mSlow: Metric.Metric<number, unknown>
  readonly mRejected: Metric.Metric<number, unknown>
  readonly mIgnored: Metric.Metric<number, unknown>
  readonly mState: Metric.Metric<number, unknown>
  /** The Open-wait schedule's step function; a fresh one after each close. */
  step: WaitStep
  /** The one timer fiber, sleeping until `timerDeadline`. */
  timer: Fiber.Fiber<void> | undefined
  timerDeadline: number
  timerId: number
  closed: boolean
  /** The error of the last call recorded as a failure (set on the failure path only). */
  lastFailure: unknown
  /** The failure that caused the last opening, carried by rejections as `openedBy`. */
  openedBy: unknown
}

const settingsOf = (config: CircuitBreakerConfig): Machine.Settings => ({
  windowType: config.slidingWindowType,
  windowSize: config.slidingWindowSize,
  minimumCalls: config.slidingWindowType === "count"
    ? Math.min(config.minimumNumberOfCalls, config.slidingWindowSize)
    : config.minimumNumberOfCalls,
  consecutiveFailureThreshold: config.consecutiveFailureThreshold,
  failureRateThreshold: config.failureRateThreshold,
  slowCallRateThreshold: config.slowCallRateThreshold,
  slowCallMillis: Duration.toMillis(config.slowCallDuration),
  permittedCallsInHalfOpen: config.permittedCallsInHalfOpen,
  successThresholdToClose: config.successThresholdToClose,
  slowProbeLimit: Math.max(1, Math.ceil(config.slowCallRateThreshold * config.permittedCallsInHalfOpen)),
  halfOpenMaxWaitMillis: Duration.toMillis(config.maxWaitDurationInHalfOpen),
  waitMillis: Duration.toMillis(config.waitDurationInOpen)
})

const hasListeners = (core: Core): boolean => {
  if (core.hub.listeners > 0) return true
  for (const sink of core.sinks) if (sink.listeners > 0) return true
  return false
}

const publish = (core: Core, event: CircuitBreakerEvent): void => {
  PubSub.publishUnsafe(core.hub.pubsub, event)
  for (const sink of core.sinks) PubSub.publishUnsafe(sink.pubsub, event)
}

/** A fresh step function of the Open-wait schedule. */
const startSchedule = (core: Core): Effect.Effect<void> =>
  Effect.map(Schedule.toStep(core.schedule), (step) => {
    core.step = step as unknown as WaitStep
  }).pipe(Effect.provideContext(core.context))

/**
 * Steps the schedule for the opening after the `openings`-th and hands the wait to the machine. A schedule
 * that is done or fails leaves the previous wait in place.
 */
const stepWait = (core: Core, at: number, openings: number): Effect.Effect<void> =>
  core.step(at, openings + 1).pipe(
    Effect.provideContext(core.context),
    Effect.matchCauseEffect({
      onFailure: () => Effect.void,
      onSuccess: ([, delay]) => {
        const millis = Duration.toMillis(delay)
        return millis > 0 ? Ref.update(core.ref, (s) => Machine.setNextWait(s, openings, millis)[1]) : Effect.void
      }
    })
  )

/** Keeps one timer fiber on the current deadline, so timed transitions are published with no traffic. */
const scheduleTimer = (core: Core): Effect.Effect<void> =>
  Effect.flatMap(Ref.get(core.ref), (s) => {
    if (s.deadline === core.timerDeadline) return Effect.void
    const previous = core.timer
    const id = ++core.timerId
    core.timer = undefined
    core.timerDeadline = s.deadline
    const stop = previous === undefined ? Effect.void : Fiber.interrupt(previous)
    if (s.deadline === Infinity || core.closed) return stop
    const delay = Duration.millis(Math.max(0, s.deadline - core.clock.currentTimeMillisUnsafe()))
    const wake = Effect.andThen(
      core.clock.sleep(delay),
      Effect.uninterruptible(Effect.suspend(() => {
        if (core.timerId === id) {
          core.timer = undefined
          core.timerDeadline = NaN // whatever the tick finds, the next deadline gets a timer
        }
        return Effect.asVoid(tick(core))
      }))
    )
    return Effect.andThen(
      stop,
      Effect.map(Effect.forkIn(wake, core.scope), (fiber) => {
        if (core.timerId === id) core.timer = fiber
      })
    )
  })

const needsReaction = (core: Core, out: Machine.Output): boolean =>
  out.transitions.length > 0 || out.deadline !== core.timerDeadline

/**
 * Everything a step's output asks of the world: transition events and metrics, a fresh schedule after a
 * close, the next wait after an opening or a close, and the timer.
 */
const react = (core: Core, out: Machine.Output): Effect.Effect<void> =>
  Effect.suspend(() => {
    let opened: Machine.Transition | undefined
    let closed: Machine.Transition | undefined
    for (const t of out.transitions) {
      core.mState.updateUnsafe(stateGaugeValue[t.to], core.context)
      Metric.withAttributes(transitionsCounter, { server: core.server, from: t.from, to: t.to }).updateUnsafe(
        1,
        core.context
      )
      publish(core, { _tag: "StateTransition", server: core.server, from: t.from, to: t.to, at: t.at, reason: t.reason })
      if (t.to === "Open") {
        opened = t
        // (ForcedOpen is never left for Open: the shell's manual states are ForcedOpen, Disabled, MetricsOnly, Closed.)
        core.openedBy = t.reason === "SlowCallRate" || t.reason === "SlowProbes" ? undefined : core.lastFailure
      }
      if (t.to === "Closed") core.lastFailure = undefined
      if (t.to === "Closed") closed = t
    }
    const last = closed ?? opened
    if (last === undefined) return scheduleTimer(core)
    const next = Effect.flatMap(Ref.get(core.ref), (s) => stepWait(core, last.at, s.openings))
    return Effect.andThen(closed !== undefined ? Effect.andThen(startSchedule(core), next) : next, scheduleTimer(core))
  })

const reactIfNeeded = (core: Core, out: Machine.Output): Effect.Effect<void> =>
  needsReaction(core, out) ? react(core, out) : Effect.void

/** Applies the timed transitions due now; returns the state after them. */
const tick = (core: Core): Effect.Effect<Machine.State> =>
  Effect.suspend(() => {
    const now = core.clock.currentTimeMillisUnsafe()
    return Effect.flatMap(
      Ref.modify(core.ref, (s): readonly [readonly [Machine.Output, Machine.State], Machine.State] => {
        const step = Machine.tick(core.settings, s, now)
        return [step, step[1]]
      }),
      ([out, s]) => Effect.as(reactIfNeeded(core, out), s)
    )
  })

const manual = (core: Core, to: CircuitState): Effect.Effect<void> =>
  Effect.suspend(() => {
    const now = core.clock.currentTimeMillisUnsafe()
    return Effect.flatMap(Ref.modify(core.ref, (s) => Machine.manual(core.settings, s, to, now)), (out) =>
      react(core, out))
  })

const verdictOf = (core: Core, exit: Exit.Exit<unknown, unknown>): Verdict => {
  if (exit._tag === "Success") return "success"
  const cause = exit.cause
  if (Cause.hasInterruptsOnly(cause)) return "ignore"
  const error = Cause.findErrorOption(cause)
  if (error._tag === "None") return "failure" // a defect
  if (isUncounted(error.value)) return "ignore"
  if (core.classify !== undefined) {
    const v = core.classify(error.value)
    if (v !== undefined) return v
  }
  return defaultClassifier(error.value, core.config.countToolErrors)
}

const rejection = (core: Core, s: Machine.State, now: number): CircuitOpenError => {
  const state = s.state === "Open" || s.state === "HalfOpen" ? s.state : "ForcedOpen"
  const nextProbeAt = s.state === "Open" ? s.deadline : undefined
  // A rejection's stack trace would only show the breaker's internals, and capturing it costs ~5 µs:
  // build the error without one (as Effect does for its own internal errors).
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new CircuitOpenError({
      server: core.server,
      state,
      nextProbeAt,
      openedBy: state === "ForcedOpen" ? undefined : core.openedBy,
      message: state === "Open"
        ? `circuit breaker for "${core.server}" is open; next probe in ${s.deadline - now} ms`
        : state === "HalfOpen"
        ? `circuit breaker for "${core.server}" is half-open and all probe slots are taken`
        : `circuit breaker for "${core.server}" is forced open`
    }, { disableChecks: true })
  } finally {
    Error.stackTraceLimit = limit
  }
}

const reject = (core: Core, now: number): Effect.Effect<never, CircuitOpenError> =>
  Effect.flatMap(Ref.get(core.ref), (s) => {
    core.mRejected.updateUnsafe(1, core.callContext)
    if (hasListeners(core)) {
      publish(core, {
        _tag: "CallRejected",
        server: core.server,
        state: s.state,
        at: now,
        nextProbeAt: s.state === "Open" ? s.deadline : undefined
      })
    }
    return Effect.fail(rejection(core, s, now))
  })

/**
 * After a completion step: the counters, the `CallRecorded` event (only with listeners), and the reaction
 * to run, if any. Shared by {@link record} and {@link recordUnsafe}.
 */
const afterRecord = (
  core: Core,
  out: Machine.Output,
  verdict: Verdict,
  exit: Exit.Exit<unknown, unknown>,
  start: number,
  now: number
): Effect.Effect<void> | undefined => {
  ;(verdict === "success" ? core.mSuccess : verdict === "failure" ? core.mFailure : core.mIgnored)
    .updateUnsafe(1, core.callContext)
  if (out.slow) core.mSlow.updateUnsafe(1, core.callContext)
  if (hasListeners(core)) {
    publish(
      core,
      exit._tag === "Failure" && verdict !== "success"
        ? {
          _tag: "CallRecorded",
          server: core.server,
          outcome: verdict,
          slow: out.slow,
          durationMs: now - start,
          at: now,
          error: Cause.squash(exit.cause)
        }
        : { _tag: "CallRecorded", server: core.server, outcome: verdict, slow: out.slow, durationMs: now - start, at: now }
    )
  }
  return needsReaction(core, out) ? react(core, out) : undefined
}

/** The verdict of a finished call, remembering a counted failure as the cause of a later opening. */
const verdictFor = (core: Core, exit: Exit.Exit<unknown, unknown>): Verdict => {
  const verdict = verdictOf(core, exit)
  if (verdict === "failure" && exit._tag === "Failure") core.lastFailure = Cause.squash(exit.cause)
  return verdict
}

/**
 * Records a finished call synchronously, for the fused `callTool` step: the same machine step `record`
 * runs through `Ref.modify`, applied to the `Ref`'s value in place (what `Ref.modify` itself does, without
 * an effect around it; Effect 4.1 has `Ref.getUnsafe` but no synchronous modify), then {@link afterRecord}.
 * Returns the reaction to run, if any.
 */
const recordUnsafe = (
  core: Core,
  generation: number,
  start: number,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<void> | undefined => {
  const now = core.clock.currentTimeMillisUnsafe()
  const verdict = verdictFor(core, exit)
  const [out, next] = Machine.complete(core.settings, Ref.getUnsafe(core.ref), generation, verdict, now - start, now)
  core.ref.ref.current = next
  return afterRecord(core, out, verdict, exit, start, now)
}

/**
 * Records a call that finished just now (called from its `onExit`): one `Ref.modify` with the machine's
 * completion step, then {@link afterRecord}.
 */
const recordNow = (core: Core, generation: number, start: number, exit: Exit.Exit<unknown, unknown>) => {
  const now = core.clock.currentTimeMillisUnsafe()
  const verdict = verdictFor(core, exit)
  return Effect.flatMap(
    Ref.modify(core.ref, (s) => Machine.complete(core.settings, s, generation, verdict, now - start, now)),
    (out) => afterRecord(core, out, verdict, exit, start, now) ?? Effect.void
  )
}

/** {@link recordNow}, reading the clock when it runs. */
const record = (core: Core, generation: number, start: number, exit: Exit.Exit<unknown, unknown>) =>
  Effect.suspend(() => recordNow(core, generation, start, exit))

/** The synchronous permit of a closed (or metrics-only) breaker with nothing due; else `undefined`. */
const tryAcquireUnsafe = (core: Core): number | undefined => {
  const s = Ref.getUnsafe(core.ref)
  return (s.state === "Closed" || s.state === "MetricsOnly") && s.deadline === core.timerDeadline ? s.generation : undefined
}

/**
 * A closed breaker with nothing due admits without changing its state (`Machine.acquire` returns it as it
 * is), so the common call reads the permit synchronously and records its outcome with one `Ref.modify`;
 * every other state takes {@link executeGeneral}. Nothing can interrupt between the read and `onExit`
 * registering the recording (one synchronous step), and `onExit`'s finalizer runs uninterruptibly.
 */
const execute = <A, E, R>(core: Core, self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R> =>
  Effect.suspend(() => {
    const generation = tryAcquireUnsafe(core)
    if (generation === undefined) return executeGeneral(core, self)
    const start = core.clock.currentTimeMillisUnsafe()
    return Effect.onExit(self, (exit) => recordNow(core, generation, start, exit))
  })

/** Admission (one `Ref.modify`), then the call with its outcome recorded, or a rejection. */
const executeGeneral = <A, E, R>(core: Core, self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R> =>
  Effect.uninterruptibleMask((restore) => {
    const start = core.clock.currentTimeMillisUnsafe()
    return Effect.flatMap(
      Ref.modify(core.ref, (s) => Machine.acquire(core.settings, s, start)),
      (out): Effect.Effect<A, E | CircuitOpenError, R> => {
        const generation = out.decision
        const run: Effect.Effect<A, E | CircuitOpenError, R> = generation >= 0
          ? Effect.onExit(restore(self), (exit) => record(core, generation, start, exit))
          : generation === Machine.UNRECORDED
          ? restore(self)
          : reject(core, start)
        return needsReaction(core, out) ? Effect.andThen(react(core, out), run) : run
      }
    )
  })

const stats = (core: Core): Effect.Effect<CircuitBreakerStats> =>
  Effect.map(tick(core), (s) => {
    const w = Machine.refreshWindow(core.settings, s.window, core.clock.currentTimeMillisUnsafe())
    const c = s.counters
    return {
      server: core.server,
      state: s.state,
      totalCalls: c.total,
      successfulCalls: c.successful,
      failedCalls: c.failed,
      slowCalls: c.slow,
      ignoredCalls: c.ignored,
      rejectedCalls: c.rejected,
      windowCalls: w.calls,
      windowFailures: w.failures,
      windowSlowCalls: w.slow,
      failureRate: w.calls === 0 ? 0 : w.failures / w.calls,
      slowCallRate: w.calls === 0 ? 0 : w.slow / w.calls,
      consecutiveFailures: s.consecutiveFailures,
      openings: s.openings,
      nextProbeAt: s.state === "Open" ? s.deadline : undefined
    }
  })

const statusOf = (s: Machine.State): CircuitStatus => ({
  state: s.state,
  generation: s.generation,
  since: s.since,
  deadline: s.deadline,
  openings: s.openings
})

const isTransition = (e: CircuitBreakerEvent): e is StateTransition => e._tag === "StateTransition"

const breakerOf = (core: Core): Breaker => {
  const subscribe = subscribeHub(core.hub)
  const events = hubStream(core.hub)
  return {
    server: core.server,
    config: core.config,
    execute: (self) => execute(core, self),
    tryAcquireUnsafe: () => tryAcquireUnsafe(core),
    recordUnsafe: (generation, start, exit) => recordUnsafe(core, generation, start, exit),
    state: Effect.map(tick(core), (s) => s.state),
    status: Effect.map(tick(core), statusOf),
    stats: stats(core),
    events,
    transitions: Stream.filter(events, isTransition),
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
    isolate: manual(core, "ForcedOpen"),
    disable: manual(core, "Disabled"),
    metricsOnly: manual(core, "MetricsOnly"),
    reset: manual(core, "Closed")
  }
}

/** Makes a breaker from a decoded config, publishing to `sinks` too; its timer and events end with the scope. */
const makeFromConfig = (
  server: string,
  config: CircuitBreakerConfig,
  options: MakeOptions,
  sinks: ReadonlyArray<Hub>
): Effect.Effect<Breaker, never, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<never>()
    const scope = yield* Effect.scope
    const clock = Context.get(context, Clock.Clock)
    const settings = settingsOf(config)
    const hub = yield* makeHub
    // The per-call counters are their own series objects (not `withAttributes` views of `callsCounter`):
    // a view copies the context on every update, and views of one shared metric recompute its series key
    // whenever two of them alternate. Same series: the context's metric attributes are folded into each
    // counter's own attributes (the breaker's `server` and `outcome` win, as with `withAttributes`), and the
    // counters are updated in `callContext`, whose metric attributes are empty.
    const extra = Context.get(context, Metric.CurrentMetricAttributes)
    const calls = (outcome: string) =>
      Metric.counter(callsCounter.id, {
        description: callsCounter.description,
        incremental: true,
        attributes: { ...extra, server, outcome }
      })
    const core: Core = {
      server,
      config,
      settings,
      ref: yield* Ref.make(Machine.initial(settings, clock.currentTimeMillisUnsafe())),
      clock,
      context,
      scope,
      schedule: options.openSchedule ?? openWaitSchedule(config),
      classify: options.classify,
      hub,
      sinks,
      callContext: Context.make(Metric.MetricRegistry, Context.get(context, Metric.MetricRegistry)).pipe(
        Context.add(Metric.CurrentMetricAttributes, {})
      ),
      mSuccess: calls("success"),
      mFailure: calls("failure"),
      mSlow: calls("slow"),
      mRejected: calls("rejected"),
      mIgnored: calls("ignored"),
      mState: Metric.withAttributes(stateGauge, { server }),
      step: () => Effect.fail(undefined),
      timer: undefined,
      timerDeadline: Infinity,
      timerId: 0,
      closed: false,
      lastFailure: undefined,
      openedBy: undefined
    }
    yield* Metric.update(core.mState, stateGaugeValue.Closed)
    yield* startSchedule(core)
    yield* stepWait(core, clock.currentTimeMillisUnsafe(), 0)
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        core.closed = true
        core.timerId++
        const timer = core.timer
        core.timer = undefined
        return Effect.andThen(timer === undefined ? Effect.void : Fiber.interrupt(timer), PubSub.shutdown(hub.pubsub))
      })
    )
    return breakerOf(core)
  })

// -------------------------------------------------------------------------------------------------------------
// constructors and services
// -------------------------------------------------------------------------------------------------------------

/**
 * Makes a breaker for `server`. Time comes from the `Clock`, jitter from the `Random` and metrics go to the
 * registry of the context `make` runs in. The scope ends the breaker's timer fiber and event stream. An
 * invalid config fails with {@link McpConfigError} (path `breaker.<field>`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  server: string,
  config: CircuitBreakerConfigInput | CircuitBreakerConfig = {},
  options: MakeOptions = {}
): Effect.Effect<Breaker, McpConfigError, Scope.Scope> =>
  Effect.flatMap(resolveConfig(config), (resolved) => makeFromConfig(server, resolved, options, []))

/**
 * A single breaker as a service, for code that guards one server.
 *
 * @since 0.1.0
 * @category services
 */
export class CircuitBreaker extends Context.Service<CircuitBreaker, Breaker>()("@keel/core/CircuitBreaker") {
  /** A layer providing a breaker for `server`; fails with {@link McpConfigError} on a bad setting. */
  static readonly layer = (
    server: string,
    config: CircuitBreakerConfigInput | CircuitBreakerConfig = {},
    options: MakeOptions = {}
  ): Layer.Layer<CircuitBreaker, McpConfigError> => Layer.effect(CircuitBreaker, make(server, config, options))
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
  readonly defaults?: CircuitBreakerConfigInput | CircuitBreakerConfig | undefined
  readonly servers?: { readonly [server: string]: CircuitBreakerConfigInput | CircuitBreakerConfig } | undefined
}

/**
 * Breakers per server, made on first use (or by `add`), so one bad server never blocks the others.
 *
 * @since 0.1.0
 * @category registry
 */
export interface Registry {
  /** The breaker for `server` (made on first use from `defaults` ⊕ `servers[server]`). */
  readonly get: (server: string) => Effect.Effect<Breaker>
  /**
   * Makes the breaker for `server` from `defaults` ⊕ `servers[server]` ⊕ `config`, replacing (and shutting
   * down) any previous breaker of that name. A bad setting fails with {@link McpConfigError}.
   */
  readonly add: (
    server: string,
    config?: CircuitBreakerConfigInput | CircuitBreakerConfig
  ) => Effect.Effect<Breaker, McpConfigError>
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
  /**
   * A subscription taken now that does not turn per-call events on: it gets every `StateTransition`, and
   * per-call events only while another subscriber has them on (filter on `_tag`). For listeners that live
   * beside every call (e.g. sharing transitions across replicas) at no per-call cost.
   */
  readonly subscribeTransitions: Effect.Effect<PubSub.Subscription<CircuitBreakerEvent>, never, Scope.Scope>
}

interface RegistryEntry {
  readonly breaker: Breaker
  readonly scope: Scope.Closeable
}

/**
 * Makes a registry. Breakers live as long as the scope (or until `remove`). `defaults` and each entry of
 * `servers` are validated now: a bad setting fails with {@link McpConfigError} (path
 * `breaker.<field>` for the defaults, `servers.<name>.breaker.<field>` for an override), so `get` never fails.
 *
 * @since 0.1.0
 * @category registry
 */
export const makeRegistry = (
  options: RegistryOptions = {}
): Effect.Effect<Registry, McpConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const registryScope = yield* Effect.scope
    const defaults = yield* resolveConfig(options.defaults ?? {})
    const configs = new Map<string, CircuitBreakerConfig>()
    for (const [server, own] of Object.entries(options.servers ?? {})) {
      configs.set(server, yield* resolveConfig({ ...options.defaults, ...own }, `servers.${server}.breaker`))
    }
    const hub = yield* makeHub
    yield* Effect.addFinalizer(() => PubSub.shutdown(hub.pubsub))
    const breakers = new Map<string, RegistryEntry>()

    const install = (server: string, config: CircuitBreakerConfig): Effect.Effect<Breaker> =>
      Effect.uninterruptible(Effect.gen(function*() {
        const scope = yield* Scope.fork(registryScope)
        const breaker = yield* Scope.provide(makeFromConfig(server, config, options, [hub]), scope)
        const previous = breakers.get(server)
        breakers.set(server, { breaker, scope })
        if (previous !== undefined) yield* Scope.close(previous.scope, Exit.void)
        return breaker
      }))

    const get = (server: string): Effect.Effect<Breaker> =>
      Effect.suspend(() => {
        const entry = breakers.get(server)
        return entry !== undefined ? Effect.succeed(entry.breaker) : install(server, configs.get(server) ?? defaults)
      })

    const registry: Registry = {
      get,
      add: (server, config) =>
        Effect.flatMap(
          resolveConfig({ ...options.defaults, ...options.servers?.[server], ...config }),
          (resolved) => install(server, resolved)
        ),
      remove: (server) =>
        Effect.suspend(() => {
          const entry = breakers.get(server)
          if (entry === undefined) return Effect.void
          breakers.delete(server)
          return Scope.close(entry.scope, Exit.void)
        }),
      execute: (server, self) =>
        Effect.suspend(() => {
          const entry = breakers.get(server)
          return entry !== undefined
            ? entry.breaker.execute(self)
            : Effect.flatMap(get(server), (breaker) => breaker.execute(self))
        }),
      states: Effect.map(
        Effect.forEach(breakers, ([server, { breaker }]) => Effect.map(breaker.state, (state) => [server, state] as const)),
        (entries) => new Map(entries)
      ),
      stats: Effect.forEach(breakers.values(), ({ breaker }) => breaker.stats),
      events: hubStream(hub),
      subscribe: subscribeHub(hub),
      subscribeTransitions: PubSub.subscribe(hub.pubsub)
    }
    return registry
  })

/**
 * The per-server breaker registry as a service.
 *
 * @since 0.1.0
 * @category registry
 */
export class CircuitBreakerRegistry
  extends Context.Service<CircuitBreakerRegistry, Registry>()("@keel/core/CircuitBreakerRegistry")
{
  /** A layer providing the registry; fails with {@link McpConfigError} when `defaults` or `servers` are bad. */
  static readonly layer = (options: RegistryOptions = {}): Layer.Layer<CircuitBreakerRegistry, McpConfigError> =>
    Layer.effect(CircuitBreakerRegistry, makeRegistry(options))
  /** Same as {@link makeRegistry}. */
  static readonly make = makeRegistry
}
