/**
 * Hands the program's Effect `Metric`s to OpenTelemetry `MetricReader`s (Prometheus, OTLP, in-memory, ...)
 * through `@effect/opentelemetry`, and gives each metric its unit.
 *
 * Effect metrics carry no unit, so `@effect/opentelemetry` reports every metric with unit `1`. This module
 * sets the unit from {@link McpMetrics.Units} (the semantic-convention histograms are in `s`) and from the
 * name (a name ending in `_seconds` is in `s`). For Prometheus it also appends the unit suffix the
 * OpenTelemetry→Prometheus compatibility rules ask for, so `mcp.client.operation.duration` is scraped as
 * `mcp_client_operation_duration_seconds`; OTLP readers keep the semantic-convention name.
 *
 * @since 0.1.0
 */
import * as OtelMetrics from "@effect/opentelemetry/OtelMetrics"
import type { Resource } from "@effect/opentelemetry/Resource"
import * as McpMetrics from "@keel/core/McpMetrics"
import type { CollectionResult, MetricCollectOptions, MetricData, MetricProducer, MetricReader } from "@opentelemetry/sdk-metrics"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/**
 * Options for {@link register}.
 *
 * - `units`: metric name → unit, on top of {@link McpMetrics.Units}.
 * - `prometheusNames`: append `_seconds` to the name of a metric in seconds that lacks it.
 * - `temporality`: `cumulative` (default; what Prometheus wants) or `delta`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExportOptions {
  readonly units?: Readonly<Record<string, string>> | undefined
  readonly prometheusNames?: boolean | undefined
  readonly temporality?: OtelMetrics.TemporalityPreference | undefined
  readonly shutdownTimeout?: number | undefined
}

/**
 * The unit of a metric: from the tables, else `s` for a name ending in `_seconds` or `.seconds`.
 *
 * @since 0.1.0
 * @category naming
 */
export const unitOf = (name: string, units: Readonly<Record<string, string>>): string | undefined =>
  units[name] ?? McpMetrics.Units[name] ?? (/[._]seconds$/.test(name) ? "s" : undefined)

/**
 * The Prometheus name of a metric in `unit`: `_seconds` appended when the unit is `s` and the name does
 * not say so already (the exporter turns `.` into `_` and appends `_total` to counters itself).
 *
 * @since 0.1.0
 * @category naming
 */
export const prometheusName = (name: string, unit: string | undefined): string =>
  unit === "s" && !/[._]seconds$/.test(name) ? `${name}_seconds` : name

const rewrite = (data: MetricData, units: Readonly<Record<string, string>>, prometheusNames: boolean): MetricData => {
  const unit = unitOf(data.descriptor.name, units)
  if (unit === undefined) return data
  const name = prometheusNames ? prometheusName(data.descriptor.name, unit) : data.descriptor.name
  return { ...data, descriptor: { ...data.descriptor, unit, name } } as MetricData
}

/**
 * Wraps a producer so every metric it reports carries its unit (and, for Prometheus, its unit suffix).
 *
 * @since 0.1.0
 * @category producers
 */
export const withUnits = (producer: MetricProducer, options: ExportOptions = {}): MetricProducer => {
  const units = options.units ?? {}
  const prometheusNames = options.prometheusNames ?? false
  return {
    collect: async (collectOptions?: MetricCollectOptions): Promise<CollectionResult> => {
      const result = await producer.collect(collectOptions)
      for (const scope of result.resourceMetrics.scopeMetrics) {
        scope.metrics = scope.metrics.map((m) => rewrite(m, units, prometheusNames))
      }
      return result
    }
  }
}

/**
 * Registers the program's Effect metrics with each reader (one producer per reader, so delta temporality
 * keeps separate state per reader). The readers are shut down when the scope closes.
 *
 * @since 0.1.0
 * @category producers
 */
export const register = (
  readers: ReadonlyArray<MetricReader>,
  options: ExportOptions = {}
): Effect.Effect<void, never, Resource | Scope.Scope> =>
  Effect.forEach(readers, (reader) =>
    Effect.flatMap(OtelMetrics.makeProducer(options.temporality ?? "cumulative"), (producer) =>
      OtelMetrics.registerProducer(withUnits(producer, options), () => reader, {
        shutdownTimeout: options.shutdownTimeout ?? 3000
      })), { discard: true })
