/**
 * Timeouts of tool calls: per call, per tool and per server, with reset-on-progress and a hard maximum.
 *
 * Resolution for one call, most specific first:
 *
 * 1. the call's own `timeout` option;
 * 2. the server's `tools[toolName]`;
 * 3. the server's `call`;
 * 4. the manager-wide defaults (the same fields).
 *
 * With `resetOnProgress` on (per server, or per call by passing `onProgress`), Keel asks the server for
 * progress and each notification restarts the timeout; `max` bounds the whole call whatever progress
 * arrives (Keel enforces it itself: the SDK checks its `maxTotalTimeout` only when progress arrives). Off
 * by default: asking for progress and racing a second timer cost every call a little, for the few tools
 * that report progress.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/**
 * A timeout: a positive number of milliseconds (`Infinity`, or `null` in a file, for none). Zero and negative
 * values are refused: they would time out every request.
 */
const Timeout = Schema.DurationFromMillis.check(
  Schema.makeFilter((d: Duration.Duration) =>
    Duration.toMillis(d) > 0 ? undefined : "Expected a positive duration (null for no timeout)"
  )
)

const Millis = (defaultMillis: number) => Timeout.pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultMillis)))

/**
 * The longest timer Node can arm (2^31 - 1 ms, about 24.8 days): a longer `setTimeout` fires after 1 ms with
 * a `TimeoutOverflowWarning`. Longer timeouts, and "no timeout" (`Duration.infinity`), are clamped to it,
 * which is as good as none.
 *
 * @since 0.2.0
 * @category config
 */
export const MAX_TIMER_MS = 2_147_483_647

/**
 * Timeouts config (durations in milliseconds when encoded):
 *
 * | field             | default | meaning                                                        |
 * | ----------------- | ------- | -------------------------------------------------------------- |
 * | `call`            | 30 s    | a call's timeout, restarted by progress when `resetOnProgress`  |
 * | `tools`           | `{}`    | per-tool overrides of `call`, by tool name                      |
 * | `resetOnProgress` | `false` | ask for progress; each notification restarts the timeout        |
 * | `max`             | 5 min   | hard maximum for one call, progress or not                      |
 *
 * Every value must be positive: 0 or a negative value is an `McpConfigError`. "No timeout" is `null` in a
 * file and `Duration.infinity` in code; values above {@link MAX_TIMER_MS} (Node's timer limit) are clamped
 * to it. In files a duration is a number of milliseconds or a string such as `"5 seconds"`.
 *
 * @since 0.1.0
 * @category config
 */
export const TimeoutsConfig = Schema.Struct({
  call: Millis(30_000),
  tools: Schema.Record(Schema.String, Timeout).pipe(Schema.withDecodingDefaultKey(Effect.succeed({}))),
  resetOnProgress: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(false))),
  max: Millis(300_000)
})

/** @since 0.1.0 @category config */
export type TimeoutsConfig = typeof TimeoutsConfig.Type

/** The defaults of {@link TimeoutsConfig}. @since 0.1.0 @category config */
export const defaultTimeouts: TimeoutsConfig = Schema.decodeUnknownSync(TimeoutsConfig)({})

/**
 * The timeout of one call, in milliseconds, and whether progress resets it, and the hard maximum.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedTimeout {
  readonly _tag: "ResolvedTimeout"
  readonly timeoutMs: number
  readonly resetOnProgress: boolean
  readonly maxMs: number
}

/**
 * What a call may say about its own timeout (a subset of `McpClient.CallOptions`).
 *
 * @since 0.1.0
 * @category models
 */
export interface CallTimeoutOptions {
  readonly timeout?: Duration.Input | undefined
  readonly onProgress?: unknown
  readonly resetTimeoutOnProgress?: boolean | undefined
  readonly maxTotalTimeout?: Duration.Input | undefined
}

/** A timeout in milliseconds, clamped to Node's timer limit. */
const clamp = (ms: number): number => (ms > MAX_TIMER_MS ? MAX_TIMER_MS : ms)

/**
 * A per-call duration in milliseconds (clamped), or the reason it is not one: unparseable, zero or negative.
 */
const callMillis = (d: Duration.Input): number | string => {
  const parsed = Duration.fromInput(d)
  if (parsed._tag === "None") return "Expected a duration such as 5000 (ms), \"5 seconds\" or Duration.infinity"
  const ms = Duration.toMillis(parsed.value)
  return ms > 0 ? clamp(ms) : "Expected a positive duration (Duration.infinity for no timeout)"
}

/**
 * A per-call timeout option that is not a positive duration.
 *
 * @since 0.2.0
 * @category models
 */
export interface InvalidTimeout {
  readonly _tag: "InvalidTimeout"
  /** `timeout` or `maxTotalTimeout`. */
  readonly option: string
  readonly message: string
}

/**
 * Resolves the timeout of a call of `tool` (see the module doc for the order). A call that passes
 * `onProgress` gets reset-on-progress unless it says `resetTimeoutOnProgress: false`; its own
 * `maxTotalTimeout` replaces the config's `max`. A call option that is not a positive duration is returned
 * as an {@link InvalidTimeout} (never thrown).
 *
 * @since 0.1.0
 */
export const resolveTimeout = (
  config: TimeoutsConfig,
  tool: string,
  call: CallTimeoutOptions | undefined
): ResolvedTimeout | InvalidTimeout => {
  let timeoutMs: number
  if (call?.timeout !== undefined) {
    const ms = callMillis(call.timeout)
    if (typeof ms === "string") return { _tag: "InvalidTimeout", option: "timeout", message: ms }
    timeoutMs = ms
  } else {
    const perTool = Object.hasOwn(config.tools, tool) ? config.tools[tool] : undefined
    timeoutMs = clamp(Duration.toMillis(perTool ?? config.call))
  }
  let max: number
  if (call?.maxTotalTimeout !== undefined) {
    const ms = callMillis(call.maxTotalTimeout)
    if (typeof ms === "string") return { _tag: "InvalidTimeout", option: "maxTotalTimeout", message: ms }
    max = ms
  } else {
    max = clamp(Duration.toMillis(config.max))
  }
  const resetOnProgress = call?.resetTimeoutOnProgress ?? (call?.onProgress !== undefined || config.resetOnProgress)
  return { _tag: "ResolvedTimeout", timeoutMs, resetOnProgress, maxMs: Math.max(timeoutMs, max) }
}

/**
 * A server-wide timeout (`call`) in milliseconds, clamped to Node's timer limit (for `tools/list`, ping).
 *
 * @since 0.2.0
 */
export const serverTimeoutMs = (config: TimeoutsConfig): number => clamp(Duration.toMillis(config.call))
