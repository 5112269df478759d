/**
 * PrometheusText writes exactly what the exporter's own PrometheusSerializer writes, for the same
 * collected metrics: fixed cases (escaping, prefixes, scope labels, every metric kind), a property
 * over random names and label values, and a property over a sequence of scrapes through one cached
 * `Serializer` while series change value, appear and disappear between scrapes.
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

  it.effect("a Serializer's chunks concatenate to the page, none far above ChunkSize", () =>
    Effect.gen(function*() {
      const rm = yield* collectWith(Effect.forEach(Array.from({ length: 3000 }, (_, i) => i), (i) =>
        Metric.update(Metric.withAttributes(Metric.histogram("h", { boundaries: [1, 10] }), { tool: `t${i}` }), i), { discard: true }))
      const serializer = new PrometheusText.Serializer()
      const chunks = [...serializer.chunks(rm)]
      assert.isAbove(chunks.length, 3)
      const otel = new PrometheusSerializer("", false).serialize(rm)
      assert.strictEqual(chunks.join(""), otel)
      for (const c of chunks) assert.isBelow(c.length, PrometheusText.ChunkSize + 1024)
      const buffers = [...serializer.buffers(rm)]
      assert.deepStrictEqual(Buffer.concat(buffers), Buffer.from(otel, "utf8"))
      for (const b of buffers) assert.isBelow(b.length, PrometheusText.ChunkSize + 1024)
    }))

  it.effect("attribute sets whose separators collide keep their own label text in the cache", () =>
    Effect.gen(function*() {
      const rm = yield* collectWith(Effect.gen(function*() {
        const g = Metric.gauge("g")
        yield* Metric.update(Metric.withAttributes(g, { a: "x1:b1:y" }), 1)
        yield* Metric.update(Metric.withAttributes(g, { a: "x", b: "y" }), 2)
        yield* Metric.update(Metric.withAttributes(g, { a: "ünïcödé ✓ 🚀" }), 3)
      }))
      const serializer = new PrometheusText.Serializer()
      const otel = new PrometheusSerializer("", false).serialize(rm)
      for (let i = 0; i < 2; i++) {
        assert.strictEqual(serializer.serialize(rm), otel)
        assert.deepStrictEqual(Buffer.concat([...serializer.buffers(rm)]), Buffer.from(otel, "utf8"))
      }
    }))

  it.effect("a cached Serializer stays identical to the exporter's serializer across scrapes while series change, appear and disappear (property)", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              updates: fc.array(
                fc.record({
                  metric: fc.nat({ max: 5 }),
                  label: fc.constantFrom("a", "b", "x.y"),
                  value: fc.constantFrom("v", "w", "we\"ird\n", "", "1"),
                  x: fc.oneof(fc.constant(0), fc.double({ min: -5, max: 50, noNaN: true }))
                }),
                { maxLength: 8 }
              ),
              // series to drop from the registry before this scrape (indices into its keys)
              removals: fc.array(fc.nat({ max: 20 }), { maxLength: 3 })
            }),
            { minLength: 1, maxLength: 6 }
          ),
          async (steps) => {
            const registry = new Map()
            const metrics = [
              Metric.counter("calls", { incremental: true }),
              Metric.counter("updown"),
              Metric.gauge("level"),
              Metric.histogram("latency_seconds", { boundaries: [0.1, 1, 10] }),
              Metric.histogram("other", { boundaries: [5] }),
              Metric.frequency("words")
            ]
            const pages = await Effect.runPromise(Effect.gen(function*() {
              const exporter = new PrometheusExporter({ preventServerStart: true })
              yield* MetricExport.register([exporter], { prometheusNames: true }).pipe(
                Effect.provide(Resource.layer({ serviceName: "keel-test", serviceVersion: "1.2.3" }))
              )
              const options = [
                { prefix: "", withoutScopeInfo: true, withoutTargetInfo: false },
                { prefix: "app", withoutScopeInfo: false, withoutTargetInfo: true }
              ]
              const serializers = options.map((o) => new PrometheusText.Serializer(o))
              const out: Array<[string, string]> = []
              for (const step of steps) {
                const keys = [...registry.keys()]
                for (const r of step.removals) if (keys.length > 0) registry.delete(keys[r % keys.length])
                for (const u of step.updates) {
                  const m = metrics[u.metric]!
                  const tagged = Metric.withAttributes(m as Metric.Metric<unknown, unknown>, { [u.label]: u.value })
                  yield* Metric.update(tagged, u.metric === 5 ? u.value || "empty" : u.x)
                }
                const { resourceMetrics } = yield* Effect.promise(() => exporter.collect())
                options.forEach((o, i) => {
                  const otel = new PrometheusSerializer(o.prefix, false, undefined, o.withoutTargetInfo, o.withoutScopeInfo)
                  const reference = otel.serialize(resourceMetrics)
                  // bytes and text from the same cache, in both orders over the scrapes
                  const bytes = () => Buffer.concat([...serializers[i]!.buffers(resourceMetrics)]).toString("utf8")
                  const text = () => serializers[i]!.serialize(resourceMetrics)
                  const [first, second] = out.length % 2 === 0 ? [bytes(), text()] : [text(), bytes()]
                  out.push([first, reference], [second, reference])
                })
              }
              return out
            }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, registry)))
            for (const [keel, otel] of pages) assert.strictEqual(keel, otel)
          }
        ),
        { numRuns: 60 }
      )
    ))
})
