/**
 * `@keel/prometheus`: Keel's metrics (and every other Effect `Metric` of the program) exported through
 * OpenTelemetry, scraped at `/metrics`, with a typed snapshot and a Grafana dashboard
 * (`grafana/keel-dashboard.json`).
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export { PrometheusMetrics, PrometheusMetricsConfig, PrometheusMetricsError } from "./PrometheusMetrics.ts"
/** @since 0.1.0 */
export type { PrometheusMetricsConfigInput, PrometheusMetricsShape } from "./PrometheusMetrics.ts"
/** @since 0.1.0 */
export * as MetricsSnapshot from "./MetricsSnapshot.ts"
/** @since 0.1.0 */
export * as MetricExport from "./MetricExport.ts"
/** @since 0.1.0 */
export * as PrometheusText from "./PrometheusText.ts"
/** @since 0.1.0 */
export * as RegistryExposition from "./RegistryExposition.ts"
