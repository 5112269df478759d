/**
 * `PrometheusText`: writes OpenTelemetry `ResourceMetrics` (what the `PrometheusExporter` reader collects)
 * in the Prometheus text format, producing exactly the text of `@opentelemetry/exporter-prometheus`'s
 * `PrometheusSerializer` (a test checks byte equality), about 10× faster.
 *
 * Why: the exporter's serializer builds every sample line from scratch (`Object.entries`, regex
 * sanitizing and escaping of every label, an `Object.assign` per bucket), about 7 µs a line. A histogram
 * series is 17 lines with the semantic-convention buckets, so 100 servers × 50 tools took most of a
 * second per scrape. This writer builds each series' label string once, caches sanitized names, and
 * escapes only values that need it.
 *
 * Supports what the layer configures: a prefix, with or without scope labels, no timestamps, no
 * resource constant labels.
 *
 * @since 0.1.0
 */
import type { Attributes, AttributeValue } from "@opentelemetry/api"
import {
  DataPointType,
  type Histogram,
  type MetricData,
  type ResourceMetrics
} from "@opentelemetry/sdk-metrics"

const invalidCharacter = /[^a-z0-9_]/gi
const multipleUnderscore = /_{2,}/g
const needsEscape = /[\\\n"]/

const escapeString = (s: string): string => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const escapeValue = (v: AttributeValue | undefined): string => {
  const s = typeof v === "string" ? v : v === undefined ? "" : JSON.stringify(v)
  return needsEscape.test(s) ? escapeString(s).replace(/"/g, "\\\"") : s
}

const sanitizeCache = new Map<string, string>()
const sanitize = (name: string): string => {
  let out = sanitizeCache.get(name)
  if (out === undefined) {
    out = name.replace(invalidCharacter, "_").replace(multipleUnderscore, "_")
    if (sanitizeCache.size < 10_000) sanitizeCache.set(name, out)
  }
  return out
}

const valueString = (value: number): string =>
  value === Number.POSITIVE_INFINITY ? "+Inf" : value === Number.NEGATIVE_INFINITY ? "-Inf" : `${value}`

/** `k="v",k2="v2"` for a data point's attributes followed by the extra labels; "" for none. */
const labelString = (attributes: Attributes, extra: string): string => {
  let out = ""
  for (const key in attributes) {
    out += `${out.length > 0 ? "," : ""}${sanitize(key)}="${escapeValue(attributes[key])}"`
  }
  if (extra.length > 0) out += out.length > 0 ? `,${extra}` : extra
  return out
}

const promType = (data: MetricData): string => {
  switch (data.dataPointType) {
    case DataPointType.SUM:
      return data.isMonotonic ? "counter" : "gauge"
    case DataPointType.GAUGE:
      return "gauge"
    case DataPointType.HISTOGRAM:
      return "histogram"
    default:
      return "untyped"
  }
}

const leCache = new Map<number, string>()
const leLabel = (bound: number | undefined): string => {
  if (bound === undefined || bound === Number.POSITIVE_INFINITY) return "le=\"+Inf\""
  let out = leCache.get(bound)
  if (out === undefined) {
    out = `le="${String(bound)}"`
    if (leCache.size < 10_000) leCache.set(bound, out)
  }
  return out
}

const serializeMetric = (data: MetricData, prefix: string, extra: string): string => {
  let name = sanitize(escapeString(data.descriptor.name))
  if (prefix.length > 0) name = `${prefix}${name}`
  if (name === "" || name === "_") return ""
  if (name[0]! >= "0" && name[0]! <= "9") name = `_${name}`
  if (!name.endsWith("_total") && data.dataPointType === DataPointType.SUM && data.isMonotonic) name += "_total"
  let out = `# HELP ${name} ${escapeString(data.descriptor.description || "description missing")}`
  if (data.descriptor.unit) out += `\n# UNIT ${name} ${escapeString(data.descriptor.unit)}`
  out += `\n# TYPE ${name} ${promType(data)}\n`
  if (data.dataPointType === DataPointType.SUM || data.dataPointType === DataPointType.GAUGE) {
    for (const point of data.dataPoints) {
      const labels = labelString(point.attributes, extra)
      out += labels.length > 0 ? `${name}{${labels}} ${valueString(point.value as number)}\n` : `${name} ${valueString(point.value as number)}\n`
    }
  } else if (data.dataPointType === DataPointType.HISTOGRAM) {
    const bucketName = `${name}_bucket{`
    for (const point of data.dataPoints) {
      const h = point.value as Histogram
      const labels = labelString(point.attributes, extra)
      const braces = labels.length > 0 ? `{${labels}}` : ""
      out += `${name}_count${braces} ${valueString(h.count)}\n`
      if (h.sum != null) out += `${name}_sum${braces} ${valueString(h.sum)}\n`
      const prefixLabels = labels.length > 0 ? `${labels},` : ""
      const { boundaries, counts } = h.buckets
      let cumulative = 0
      let infinite = false
      for (let i = 0; i < counts.length; i++) {
        cumulative += counts[i]!
        const bound = boundaries[i]
        if (bound === undefined && infinite) break
        if (bound === Number.POSITIVE_INFINITY) infinite = true
        out += `${bucketName}${prefixLabels}${leLabel(bound)}} ${valueString(cumulative)}\n`
      }
    }
  }
  return out.trim()
}

/**
 * Options of {@link serialize}: `prefix` (without the trailing `_`), `withoutScopeInfo` and
 * `withoutTargetInfo`, as for the `PrometheusExporter`.
 *
 * @since 0.1.0
 */
export interface SerializeOptions {
  readonly prefix?: string | undefined
  readonly withoutScopeInfo?: boolean | undefined
  readonly withoutTargetInfo?: boolean | undefined
}

/**
 * The Prometheus text exposition of `resourceMetrics`.
 *
 * @since 0.1.0
 */
export const serialize = (resourceMetrics: ResourceMetrics, options: SerializeOptions = {}): string => {
  const prefix = options.prefix ? `${options.prefix}_` : ""
  let body = ""
  for (const scopeMetrics of resourceMetrics.scopeMetrics) {
    let extra = ""
    if (!options.withoutScopeInfo) {
      const scope: Attributes = { "otel.scope.name": scopeMetrics.scope.name }
      if (scopeMetrics.scope.schemaUrl) scope["otel.scope.schema_url"] = scopeMetrics.scope.schemaUrl
      if (scopeMetrics.scope.version) scope["otel.scope.version"] = scopeMetrics.scope.version
      extra = labelString(scope, "")
    }
    for (const metric of scopeMetrics.metrics) {
      const text = serializeMetric(metric, prefix, extra)
      if (text) body += `${text}\n`
    }
  }
  if (body === "") body = "# no registered metrics"
  if (options.withoutTargetInfo) return body
  const resourceLabels = labelString(resourceMetrics.resource.attributes, "")
  const target = resourceLabels.length > 0 ? `target_info{${resourceLabels}} 1` : "target_info 1"
  return `# HELP target_info Target metadata\n# TYPE target_info gauge\n${target}\n${body}`
}
