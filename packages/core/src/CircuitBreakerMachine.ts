/**
 * The circuit breaker's state machine as pure functions: a {@link State} record and
 * {@link transition}`(settings, state, event, now) → [output, state]`, the shape `Ref.modify` takes. Nothing
 * here reads a clock, draws a random number, publishes or mutates its input: `CircuitBreaker.ts` is the
 * effectful shell that holds the state in a `Ref`, steps the Open-wait `Schedule` in Effect (handing the
 * result back with a {@link NextWait} event) and publishes the transitions each step reports.
 *
 * The rules are resilience4j's (see `CircuitBreaker.ts`'s module doc); the sliding windows are immutable
 * values, copied on record (a count window is an array of `slidingWindowSize` small integers, a time window
 * three numbers per second of the window).
 *
 * @since 0.2.0
 */

/**
 * The state of a breaker. `Closed`, `Open` and `HalfOpen` are automatic; `ForcedOpen`, `Disabled` and
 * `MetricsOnly` are entered and left only by hand.
 *
 * @since 0.1.0
 * @category models
 */
export type CircuitState = "Closed" | "Open" | "HalfOpen" | "ForcedOpen" | "Disabled" | "MetricsOnly"

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

/**
 * How a call's outcome is recorded: `"failure"` counts against the server, `"success"` counts for it, and
 * `"ignore"` records nothing (a half-open probe slot is given back).
 *
 * @since 0.1.0
 * @category models
 */
export type Verdict = "success" | "failure" | "ignore"

/**
 * The numbers the machine needs, derived once from a breaker's config (durations in milliseconds).
 *
 * @since 0.2.0
 * @category models
 */
export interface Settings {
  readonly windowType: "count" | "time"
  /** Calls (count window) or seconds (time window). */
  readonly windowSize: number
  /** Calls in the window before rates are judged (count windows: at most `windowSize`). */
  readonly minimumCalls: number
  /** Counted failures in a row that open; 0 = off. */
  readonly consecutiveFailureThreshold: number
  readonly failureRateThreshold: number
  readonly slowCallRateThreshold: number
  readonly slowCallMillis: number
  readonly permittedCallsInHalfOpen: number
  readonly successThresholdToClose: number
  /** Slow successful probes that reopen: `max(1, ceil(slowCallRateThreshold × permittedCallsInHalfOpen))`. */
  readonly slowProbeLimit: number
  readonly halfOpenMaxWaitMillis: number
  /** The first wait in Open, used until the shell has stepped the schedule after a close. */
  readonly waitMillis: number
}

/**
 * A sliding window's counters. A count window's `slots` hold one entry per call (0 empty, bit 0 filled,
 * bit 1 failure, bit 2 slow) and `index` is the next slot; a time window's `slots` hold
 * `[calls, failures, slow]` per second and `index` is the last second recorded or refreshed.
 *
 * @since 0.2.0
 * @category models
 */
export interface Window {
  readonly calls: number
  readonly failures: number
  readonly slow: number
  readonly slots: ReadonlyArray<number>
  readonly index: number
}

/**
 * Lifetime counters: never reset.
 *
 * @since 0.2.0
 * @category models
 */
export interface Counters {
  readonly total: number
  readonly successful: number
  readonly failed: number
  readonly slow: number
  readonly ignored: number
  readonly rejected: number
}

/**
 * Everything a breaker knows, as one immutable record.
 *
 * @since 0.2.0
 * @category models
 */
export interface State {
  readonly state: CircuitState
  /** Increases on each transition, so an outcome only affects the state its call was admitted in. */
  readonly generation: number
  /** Epoch millis the state was entered. */
  readonly since: number
  /** Open: when probing may start. HalfOpen: when it reopens without a decision. Otherwise `Infinity`. */
  readonly deadline: number
  /** Consecutive openings since the last close. */
  readonly openings: number
  /** The wait the next opening uses (stepped ahead from the schedule by the shell). */
  readonly nextWait: number
  readonly window: Window
  readonly consecutiveFailures: number
  /** HalfOpen: probes admitted (and not given back), successful probes, slow probes. */
  readonly probes: number
  readonly probeSuccesses: number
  readonly slowProbes: number
  readonly counters: Counters
}

/**
 * A state change, as reported by a step.
 *
 * @since 0.2.0
 * @category models
 */
export interface Transition {
  readonly from: CircuitState
  readonly to: CircuitState
  /** Epoch millis (for timed transitions, the moment the wait ended). */
  readonly at: number
  readonly reason: TransitionReason
}

/**
 * A call asks to run.
 *
 * @since 0.2.0
 * @category events
 */
export interface Acquire {
  readonly _tag: "Acquire"
}

/**
 * A call admitted in `generation` finished after `durationMillis` with `verdict`.
 *
 * @since 0.2.0
 * @category events
 */
export interface Complete {
  readonly _tag: "Complete"
  readonly generation: number
  readonly verdict: Verdict
  readonly durationMillis: number
}

/**
 * A state set by hand (`Closed` resets the window and the backoff).
 *
 * @since 0.2.0
 * @category events
 */
export interface Manual {
  readonly _tag: "Manual"
  readonly to: CircuitState
}

/**
 * Time passed: apply the timed transitions that are due.
 *
 * @since 0.2.0
 * @category events
 */
export interface Tick {
  readonly _tag: "Tick"
}

/**
 * The shell stepped the Open-wait schedule after the `openings`-th opening: the next opening waits `millis`.
 * Ignored when the breaker has opened or closed since (its `openings` differs).
 *
 * @since 0.2.0
 * @category events
 */
export interface NextWait {
  readonly _tag: "NextWait"
  readonly openings: number
  readonly millis: number
}

/**
 * What can happen to a breaker.
 *
 * @since 0.2.0
 * @category events
 */
export type Event = Acquire | Complete | Manual | Tick | NextWait

/**
 * `Acquire`'s decision for a call that must not run.
 *
 * @since 0.2.0
 * @category models
 */
export const REJECTED = -1

/**
 * `Acquire`'s decision for a call that runs without being recorded (Disabled).
 *
 * @since 0.2.0
 * @category models
 */
export const UNRECORDED = -2

/**
 * What a step tells the shell.
 *
 * @since 0.2.0
 * @category models
 */
export interface Output {
  /** `Acquire`: the generation the call is admitted in, {@link REJECTED} or {@link UNRECORDED}; else -3. */
  readonly decision: number
  /** `Complete`: whether the call was slow. */
  readonly slow: boolean
  /** The transitions this step made, in order (usually none). */
  readonly transitions: ReadonlyArray<Transition>
  /** The deadline after the step (the shell keeps one timer on it). */
  readonly deadline: number
}

// -------------------------------------------------------------------------------------------------------------
// windows
// -------------------------------------------------------------------------------------------------------------

/** A packed array of `n` zeros (packed arrays copy faster than holey ones). */
const zeros = (n: number): Array<number> => {
  const out: Array<number> = []
  for (let i = 0; i < n; i++) out.push(0)
  return out
}

/**
 * An empty window for `settings`.
 *
 * @since 0.2.0
 * @category windows
 */
export const emptyWindow = (settings: Settings): Window => ({
  calls: 0,
  failures: 0,
  slow: 0,
  slots: zeros(settings.windowType === "count" ? settings.windowSize : settings.windowSize * 3),
  index: settings.windowType === "count" ? 0 : -Infinity
})

/**
 * The time window as seen at `now`: seconds that left the window are dropped. Count windows are returned
 * as they are.
 *
 * @since 0.2.0
 * @category windows
 */
export const refreshWindow = (settings: Settings, w: Window, now: number): Window => {
  if (settings.windowType === "count") return w
  const second = Math.floor(now / 1000)
  if (second <= w.index) return w
  const size = settings.windowSize
  if (second - w.index >= size) {
    // every second left the window (an empty window's slots are all zero already)
    return w.calls === 0
      ? { ...w, index: second }
      : { calls: 0, failures: 0, slow: 0, slots: zeros(size * 3), index: second }
  }
  const slots = w.slots.slice()
  let calls = w.calls
  let failures = w.failures
  let slow = w.slow
  for (let s = w.index + 1; s <= second; s++) {
    const b = (s % size) * 3
    calls -= slots[b]!
    failures -= slots[b + 1]!
    slow -= slots[b + 2]!
    slots[b] = slots[b + 1] = slots[b + 2] = 0
  }
  return { calls, failures, slow, slots, index: second }
}

/**
 * The window with one more recorded call.
 *
 * @since 0.2.0
 * @category windows
 */
export const recordWindow = (
  settings: Settings,
  w: Window,
  failure: boolean,
  slow: boolean,
  now: number
): Window => {
  if (settings.windowType === "count") {
    const old = w.slots[w.index]!
    const slot = 1 | (failure ? 2 : 0) | (slow ? 4 : 0)
    const index = w.index + 1 === w.slots.length ? 0 : w.index + 1
    // The same outcome as the one it replaces (a closed breaker's steady state): the counts and the slots
    // stay as they are, only the index moves (slots are never written in place, so they can be shared).
    if (old === slot) return { calls: w.calls, failures: w.failures, slow: w.slow, slots: w.slots, index }
    const slots = w.slots.slice()
    let calls = w.calls + 1
    let failures = w.failures + (failure ? 1 : 0)
    let slowCalls = w.slow + (slow ? 1 : 0)
    if (old !== 0) {
      calls--
      if (old & 2) failures--
      if (old & 4) slowCalls--
    }
    slots[w.index] = slot
    return { calls, failures, slow: slowCalls, slots, index }
  }
  const fresh = refreshWindow(settings, w, now)
  const slots = fresh.slots.slice()
  const b = (Math.max(fresh.index, 0) % settings.windowSize) * 3
  slots[b]!++
  if (failure) slots[b + 1]!++
  if (slow) slots[b + 2]!++
  return {
    calls: fresh.calls + 1,
    failures: fresh.failures + (failure ? 1 : 0),
    slow: fresh.slow + (slow ? 1 : 0),
    slots,
    index: fresh.index
  }
}

// -------------------------------------------------------------------------------------------------------------
// states
// -------------------------------------------------------------------------------------------------------------

const zeroCounters: Counters = { total: 0, successful: 0, failed: 0, slow: 0, ignored: 0, rejected: 0 }
const noTransitions: ReadonlyArray<Transition> = []

/**
 * A Closed breaker entered at `now` whose first opening will wait `firstWaitMillis`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const initial = (settings: Settings, now: number, firstWaitMillis: number = settings.waitMillis): State => ({
  state: "Closed",
  generation: 0,
  since: now,
  deadline: Infinity,
  openings: 0,
  nextWait: firstWaitMillis,
  window: emptyWindow(settings),
  consecutiveFailures: 0,
  probes: 0,
  probeSuccesses: 0,
  slowProbes: 0,
  counters: zeroCounters
})

/** Enters `to` at `at`, appending the transition to `log`. */
const enter = (
  settings: Settings,
  s: State,
  to: CircuitState,
  at: number,
  reason: TransitionReason,
  log: Array<Transition>
): State => {
  log.push({ from: s.state, to, at, reason })
  const resets = to === "Closed" || to === "MetricsOnly"
  return {
    state: to,
    generation: s.generation + 1,
    since: at,
    // HalfOpen has no deadline until its first probe (see acquire): with no traffic it waits half-open.
    deadline: to === "Open" ? at + s.nextWait : Infinity,
    openings: to === "Open" ? s.openings + 1 : to === "Closed" ? 0 : s.openings,
    nextWait: to === "Closed" ? settings.waitMillis : s.nextWait,
    window: resets ? emptyWindow(settings) : s.window,
    consecutiveFailures: resets ? 0 : s.consecutiveFailures,
    probes: 0,
    probeSuccesses: 0,
    slowProbes: 0,
    counters: s.counters
  }
}

/** Applies the timed transitions (Open → HalfOpen, HalfOpen → Open) due at `now`. */
const advance = (settings: Settings, s: State, now: number, log: Array<Transition>): State => {
  while (now >= s.deadline) {
    s = s.state === "Open"
      ? enter(settings, s, "HalfOpen", s.deadline, "WaitElapsed", log)
      : enter(settings, s, "Open", s.deadline, "HalfOpenMaxWait", log)
  }
  return s
}

const quiet: Output = { decision: -3, slow: false, transitions: noTransitions, deadline: Infinity }
const quietSlow: Output = { decision: -3, slow: true, transitions: noTransitions, deadline: Infinity }

// A completion with no transition (the common case) shares a constant output.
const output = (decision: number, slow: boolean, log: Array<Transition>, s: State): Output =>
  log.length === 0 && s.deadline === Infinity && decision === -3
    ? (slow ? quietSlow : quiet)
    : { decision, slow, transitions: log.length === 0 ? noTransitions : log, deadline: s.deadline }

const unrecorded: Output = { decision: UNRECORDED, slow: false, transitions: noTransitions, deadline: Infinity }

/**
 * A call asks to run at `now`: admitted in Closed and MetricsOnly, unrecorded in Disabled, admitted in
 * HalfOpen while probe slots remain (the first probe starts the HalfOpen max wait), rejected otherwise.
 *
 * @since 0.2.0
 * @category transitions
 */
export const acquire = (settings: Settings, s: State, now: number): readonly [Output, State] => {
  switch (s.state) {
    case "Closed":
    case "MetricsOnly":
      return [{ decision: s.generation, slow: false, transitions: noTransitions, deadline: s.deadline }, s]
    case "Disabled":
      return [unrecorded, s]
    case "ForcedOpen":
      return reject(s, [])
    default: {
      const log: Array<Transition> = []
      s = advance(settings, s, now, log)
      if (s.state === "HalfOpen" && s.probes < settings.permittedCallsInHalfOpen) {
        const deadline = s.probes === 0 && s.deadline === Infinity ? now + settings.halfOpenMaxWaitMillis : s.deadline
        const next: State = { ...s, probes: s.probes + 1, deadline }
        return [output(s.generation, false, log, next), next]
      }
      return reject(s, log)
    }
  }
}

const reject = (s: State, log: Array<Transition>): readonly [Output, State] => {
  const next: State = { ...s, counters: { ...s.counters, rejected: s.counters.rejected + 1 } }
  return [output(REJECTED, false, log, next), next]
}

const count = (c: Counters, verdict: Verdict, slow: boolean): Counters => ({
  total: c.total + 1,
  successful: c.successful + (verdict === "success" ? 1 : 0),
  failed: c.failed + (verdict === "failure" ? 1 : 0),
  slow: c.slow + (slow ? 1 : 0),
  ignored: c.ignored + (verdict === "ignore" ? 1 : 0),
  rejected: c.rejected
})

/**
 * A call admitted in `generation` finished at `now`. Timed transitions due before it come first; an outcome
 * from an earlier generation only updates the lifetime counters.
 *
 * @since 0.2.0
 * @category transitions
 */
export const complete = (
  settings: Settings,
  s0: State,
  generation: number,
  verdict: Verdict,
  durationMillis: number,
  now: number
): readonly [Output, State] => {
  const slow = verdict !== "ignore" && durationMillis > settings.slowCallMillis
  const counters = count(s0.counters, verdict, slow)
  if (now < s0.deadline && s0.generation === generation && s0.state === "Closed" && verdict === "success" && !slow) {
    // The closed path: a success that leaves the rates under their thresholds changes only the window, the
    // consecutive count and the counters. (A success can still open: the call that reaches
    // minimumNumberOfCalls, with enough failures before it; the general path below handles that.)
    const window = recordWindow(settings, s0.window, false, false, now)
    if (!(window.calls >= settings.minimumCalls && opensAt(settings, window))) {
      return [quiet, closedSuccess(s0, counters, window)]
    }
  }
  const log: Array<Transition> = []
  const counted: State = { ...s0, counters }
  const s = advance(settings, counted, now, log)
  const next = s.generation === generation ? record(settings, s, verdict, slow, now, log) : s
  return [output(-3, slow, log, next), next]
}

const opensAt = (settings: Settings, w: Window): boolean =>
  w.failures / w.calls >= settings.failureRateThreshold || w.slow / w.calls >= settings.slowCallRateThreshold

/** `s` (Closed, no transition due) after a fast success: built as one literal, no spread. */
const closedSuccess = (s: State, counters: Counters, window: Window): State => ({
  state: s.state,
  generation: s.generation,
  since: s.since,
  deadline: s.deadline,
  openings: s.openings,
  nextWait: s.nextWait,
  window,
  consecutiveFailures: 0,
  probes: s.probes,
  probeSuccesses: s.probeSuccesses,
  slowProbes: s.slowProbes,
  counters
})

const record = (
  settings: Settings,
  s: State,
  verdict: Verdict,
  slow: boolean,
  now: number,
  log: Array<Transition>
): State => {
  const failure = verdict === "failure"
  if (s.state === "Closed" || s.state === "MetricsOnly") {
    if (verdict === "ignore") return s
    const window = recordWindow(settings, s.window, failure, slow, now)
    const recorded: State = { ...s, window, consecutiveFailures: failure ? s.consecutiveFailures + 1 : 0 }
    if (s.state === "MetricsOnly") return recorded
    const threshold = settings.consecutiveFailureThreshold
    if (threshold > 0 && recorded.consecutiveFailures >= threshold) {
      return enter(settings, recorded, "Open", now, "ConsecutiveFailures", log)
    }
    if (window.calls >= settings.minimumCalls) {
      if (window.failures / window.calls >= settings.failureRateThreshold) {
        return enter(settings, recorded, "Open", now, "FailureRate", log)
      }
      if (window.slow / window.calls >= settings.slowCallRateThreshold) {
        return enter(settings, recorded, "Open", now, "SlowCallRate", log)
      }
    }
    return recorded
  }
  if (s.state !== "HalfOpen") return s
  if (verdict === "ignore") return { ...s, probes: Math.max(0, s.probes - 1) } // the slot is given back
  if (failure) return enter(settings, s, "Open", now, "ProbeFailed", log)
  if (slow && s.slowProbes + 1 >= settings.slowProbeLimit) return enter(settings, s, "Open", now, "SlowProbes", log)
  const probeSuccesses = s.probeSuccesses + 1
  if (probeSuccesses >= settings.successThresholdToClose) return enter(settings, s, "Closed", now, "ProbesSucceeded", log)
  return { ...s, probeSuccesses, slowProbes: slow ? s.slowProbes + 1 : s.slowProbes }
}

/**
 * Applies the timed transitions due at `now`.
 *
 * @since 0.2.0
 * @category transitions
 */
export const tick = (settings: Settings, s: State, now: number): readonly [Output, State] => {
  const log: Array<Transition> = []
  const next = advance(settings, s, now, log)
  return [output(-3, false, log, next), next]
}

/**
 * Enters `to` by hand at `now` (after the timed transitions due by then).
 *
 * @since 0.2.0
 * @category transitions
 */
export const manual = (settings: Settings, s: State, to: CircuitState, now: number): readonly [Output, State] => {
  const log: Array<Transition> = []
  const next = enter(settings, advance(settings, s, now, log), to, now, "Manual", log)
  return [output(-3, false, log, next), next]
}

/**
 * Sets the wait of the next opening, unless the breaker opened or closed since it was computed.
 *
 * @since 0.2.0
 * @category transitions
 */
export const setNextWait = (s: State, openings: number, millis: number): readonly [Output, State] => {
  const next = s.openings === openings ? { ...s, nextWait: millis } : s
  return [output(-3, false, [], next), next]
}

/**
 * The machine: `(state, event, now) → [output, state]`, ready for `Ref.modify`.
 *
 * @since 0.2.0
 * @category transitions
 */
export const transition = (settings: Settings, s: State, event: Event, now: number): readonly [Output, State] => {
  switch (event._tag) {
    case "Acquire":
      return acquire(settings, s, now)
    case "Complete":
      return complete(settings, s, event.generation, event.verdict, event.durationMillis, now)
    case "Manual":
      return manual(settings, s, event.to, now)
    case "Tick":
      return tick(settings, s, now)
    case "NextWait":
      return setNextWait(s, event.openings, event.millis)
  }
}
