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
import { Duration, Effect, Schema } from "effect"

const Millis = (defaultMillis: number) =>
  Schema.DurationFromMillis.pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultMillis)))

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
 * @since 0.1.0
 * @category config
 */
export const TimeoutsConfig = Schema.Struct({
  call: Millis(30_000),
  tools: Schema.Record(Schema.String, Schema.DurationFromMillis).pipe(Schema.withDecodingDefaultKey(Effect.succeed({}))),
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

const millisOf = (d: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(d))

/**
 * Resolves the timeout of a call of `tool` (see the module doc for the order). A call that passes
 * `onProgress` gets reset-on-progress unless it says `resetTimeoutOnProgress: false`; its own
 * `maxTotalTimeout` replaces the config's `max`.
 *
 * @since 0.1.0
 */
export const resolveTimeout = (
  config: TimeoutsConfig,
  tool: string,
  call: CallTimeoutOptions | undefined
): ResolvedTimeout => {
  const perTool = Object.hasOwn(config.tools, tool) ? config.tools[tool] : undefined
  const timeoutMs = call?.timeout !== undefined ? millisOf(call.timeout) : Duration.toMillis(perTool ?? config.call)
  const resetOnProgress = call?.resetTimeoutOnProgress ?? (call?.onProgress !== undefined || config.resetOnProgress)
  const max = call?.maxTotalTimeout !== undefined ? millisOf(call.maxTotalTimeout) : Duration.toMillis(config.max)
  return { timeoutMs, resetOnProgress, maxMs: Math.max(timeoutMs, max) }
}
