/**
 * PrometheusText writes exactly what the exporter's own PrometheusSerializer writes, for the same
 * collected metrics: fixed cases (escaping, prefixes, scope labels, every metric kind) and a property
 * over random names and label values.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { Effect, Metric } from "effect"
import * as fc from "fast-check"
import * as MetricExport from "./MetricExport.ts"
import * as PrometheusText from "./PrometheusText.ts"

const collectWith = <A, E>(record: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const exporter = new PrometheusExporter({ preventServerStart: true })
    yield* MetricExport.register([exporter], { prometheusNames: true }).pipe(
      Effect.provide(Resource.layer({ serviceName: "keel-test", serviceVersion: "1.2.3", attributes: { "deployment.environment": "a \"b\"\nc" } }))
    )
    yield* record
    const { resourceMetrics } = yield* Effect.promise(() => exporter.collect())
    return resourceMetrics
  }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))

const same = (rm: Parameters<typeof PrometheusText.serialize>[0]) => {
  for (const prefix of ["", "app"]) {
    for (const withoutScopeInfo of [true, false]) {
      for (const withoutTargetInfo of [true, false]) {
        const otel = new PrometheusSerializer(prefix, false, undefined, withoutTargetInfo, withoutScopeInfo).serialize(rm)
        const keel = PrometheusText.serialize(rm, { prefix, withoutScopeInfo, withoutTargetInfo })
        assert.strictEqual(keel, otel, `prefix=${prefix} withoutScopeInfo=${withoutScopeInfo} withoutTargetInfo=${withoutTargetInfo}`)
      }
    }
  }
}

describe("PrometheusText", () => {
  it.effect("matches the exporter's serializer on every metric kind, with escaping", () =>
    Effect.gen(function*() {
      const rm = yield* collectWith(Effect.gen(function*() {
        const h = Metric.histogram("mcp.client.operation.duration", { description: "d\\with\nnewline", boundaries: [0.01, 0.1, 1] })
        yield* Metric.update(Metric.withAttributes(h, { "gen_ai.tool.name": "we\"ird\\na\nme", "x-y.z": "1" }), 0.05)
        yield* Metric.update(Metric.withAttributes(h, { "gen_ai.tool.name": "plain" }), 5)
        yield* Metric.update(h, 0.5)
        yield* Metric.update(Metric.counter("keel.tool.calls", { incremental: true }), 3)
        yield* Metric.update(Metric.counter("already_total", { incremental: true }), 1)
        yield* Metric.update(Metric.counter("updown"), -2)
        yield* Metric.update(Metric.withAttributes(Metric.gauge("9lives"), { a: "b" }), 1.5)
        yield* Metric.update(Metric.gauge("keel_pool_acquire_duration_seconds_like"), Number.POSITIVE_INFINITY)
        yield* Metric.update(Metric.frequency("words"), "hello")
      }))
      same(rm)
    }))

  it.effect("empty registry", () => Effect.map(collectWith(Effect.void), same))

  it.effect("matches on random metric names, label names and label values (property)", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              name: fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_.\-]{0,12}$/),
              label: fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_.]{0,8}$/),
              value: fc.string({ maxLength: 12 }),
              kind: fc.constantFrom("counter", "gauge", "histogram"),
              x: fc.double({ min: 0, max: 100, noNaN: true })
            }),
            { maxLength: 12 }
          ),
          async (entries) => {
            const rm = await Effect.runPromise(collectWith(Effect.forEach(entries, (e) => {
              const m = e.kind === "counter"
                ? Metric.counter(`c_${e.name}`, { incremental: true })
                : e.kind === "gauge"
                ? Metric.gauge(`g_${e.name}`)
                : Metric.histogram(`h_${e.name}`, { boundaries: [1, 10] })
              return Metric.update(Metric.withAttributes(m as Metric.Metric<number, unknown>, { [e.label]: e.value }), e.x)
            }, { discard: true })))
            same(rm)
          }
        ),
        { numRuns: 80 }
      )
    ))
})
