/**
 * The building blocks every Keel config Schema is made of (pool, cache, breaker, client, metrics), and the
 * one error a bad setting becomes: {@link McpConfigError}, naming the path of the first bad field and never
 * echoing its value (it may be a secret).
 *
 * Durations are written as milliseconds in files (`"idleTimeout": 120000`) and as any `Duration.Input` in
 * code (`"2 minutes"`, `Duration.seconds(5)`); {@link durationsToMillis} turns the second into the first
 * before decoding.
 *
 * ```ts
 * import { Schema } from "effect"
 * import * as ConfigSchema from "@keel/core/ConfigSchema"
 *
 * const Settings = Schema.Struct({
 *   timeout: ConfigSchema.Millis(30_000),      // a Duration, 30 s when missing
 *   retries: ConfigSchema.IntAtLeast(0, 3)     // an integer >= 0, 3 when missing
 * })
 * const decode = ConfigSchema.decodeSettings(Settings, "keel.defaults", ["timeout"])
 * // decode({ timeout: "5 seconds" })  -> Effect<{ timeout: Duration, retries: 3 }, McpConfigError>
 * // decode({ retries: -1 })           -> McpConfigError { path: "keel.defaults.retries", ... }
 * ```
 *
 * @since 0.2.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"

/**
 * A setting is invalid. `path` names it (`mcpServers.github.keel.breaker.failureRateThreshold`), `message`
 * says what was expected, never what was given.
 *
 * @since 0.1.0
 * @category errors
 */
export class McpConfigError extends Schema.TaggedError<McpConfigError>()("McpConfigError", {
  path: Schema.String,
  message: Schema.String
}) {}

/**
 * A duration written as milliseconds, `defaultMillis` when the key is missing.
 *
 * @since 0.2.0
 * @category schemas
 */
export const Millis = (defaultMillis: number) =>
  Schema.DurationFromMillis.pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultMillis)))

/**
 * A duration written as milliseconds, or `null` for "off"; `defaultMillis` when the key is missing.
 *
 * @since 0.2.0
 * @category schemas
 */
export const NullableMillis = (defaultMillis: number | null) =>
  Schema.NullOr(Schema.DurationFromMillis).pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultMillis)))

/**
 * An integer `>= min`, `defaultValue` when the key is missing.
 *
 * @since 0.2.0
 * @category schemas
 */
export const IntAtLeast = (min: number, defaultValue: number) =>
  Schema.Int.check(Schema.isGreaterThanOrEqualTo(min)).pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultValue)))

/**
 * A number in `(0, 1]`, `defaultValue` when the key is missing.
 *
 * @since 0.2.0
 * @category schemas
 */
export const Fraction = (defaultValue: number) =>
  Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1)).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(defaultValue))
  )

/**
 * Any schema with a default for a missing key.
 *
 * @since 0.2.0
 * @category schemas
 */
export const withDefault = <S extends Schema.Top>(schema: S, defaultValue: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultValue)))

/**
 * A `Duration.Input` in milliseconds.
 *
 * @since 0.2.0
 * @category durations
 */
export const toMillis = (input: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * Copies `input` without `undefined` values, turning the `durationKeys` given as `Duration.Input` into
 * milliseconds (the encoded form of {@link Millis}); `null` and numbers pass through. An unparseable
 * duration is left as it is, so decoding names its path.
 *
 * @since 0.2.0
 * @category durations
 */
export const durationsToMillis = (input: object, durationKeys: ReadonlyArray<string>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue
    if (value === null || typeof value === "number" || !durationKeys.includes(key)) {
      out[key] = value
      continue
    }
    const d = Duration.fromInput(value as Duration.Input)
    out[key] = d._tag === "Some" ? Duration.toMillis(d.value) : value
  }
  return out
}

const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1()

/**
 * `prefix` and a Schema issue path as a dotted path (`keel.pool.maxConnections`).
 *
 * @since 0.2.0
 * @category errors
 */
export const formatPath = (prefix: string, path: ReadonlyArray<PropertyKey>): string =>
  [prefix, ...path.map(String)].filter((s) => s.length > 0).join(".")

/**
 * Turns a Schema decoding error into an {@link McpConfigError} naming the first bad field. The issue's
 * actual value is left out of the message: it may be a token.
 *
 * @since 0.1.0
 * @category errors
 */
export const configError = (prefix: string, error: Schema.SchemaError): McpConfigError => {
  const first = formatIssue(error.issue).issues[0]
  return new McpConfigError({
    path: formatPath(prefix, (first?.path ?? []).map((p) => (typeof p === "object" ? p.key : p))) || "(root)",
    // "Expected string, got 42": drop the "got" part, the value may be a secret.
    message: (first?.message ?? "invalid").replace(/, got [\s\S]*$/, "")
  })
}

/**
 * A decoder for a settings Schema that takes hand-written input (durations as `Duration.Input`, see
 * {@link durationsToMillis}) and fails with an {@link McpConfigError} whose path starts with `prefix`.
 *
 * @since 0.2.0
 * @category decoding
 */
export const decodeSettings = <S extends Schema.Top & { readonly DecodingServices: never }>(
  schema: S,
  prefix: string,
  durationKeys: ReadonlyArray<string> = []
) => {
  const decode = Schema.decodeUnknownEffect(schema)
  return (input: object | undefined, pathPrefix: string = prefix): Effect.Effect<S["Type"], McpConfigError> =>
    decode(durationsToMillis(input ?? {}, durationKeys), { errors: "first" }).pipe(
      Effect.mapError((e) => configError(pathPrefix, e))
    )
}
