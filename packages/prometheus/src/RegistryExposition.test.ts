/**
 * RegistryExposition writes, from the Effect registry itself, exactly the page of the exporter path
 * (`@effect/opentelemetry`'s producer, MetricExport's units, the PrometheusExporter's collect and its
 * own PrometheusSerializer): on random registries across a sequence of scrapes while series change,
 * appear and disappear (a stale cached line, label or block would show), with every option of the
 * serializer. Its gzip page (one gzip member per block) decodes, with zlib's one-shot and streaming
 * gunzip, to the same bytes. Unchanged blocks are reused as they are and changed ones rewritten; what it
 * does not write (a Summary, metrics of two kinds under one id) is left to the exporter.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { Context, Effect, Metric } from "effect"
import * as fc from "fast-check"
import { createGunzip, gunzipSync } from "node:zlib"
import * as MetricExport from "./MetricExport.ts"
import { BlockSize, type Page, RegistryExposition } from "./RegistryExposition.ts"

const options = [
  { prefix: "", withoutScopeInfo: true, withoutTargetInfo: false },
  { prefix: "app", withoutScopeInfo: false, withoutTargetInfo: true },
  { prefix: "", withoutScopeInfo: false, withoutTargetInfo: false }
] as const

/**
 * In a scope with a fresh registry: an exporter registered as PrometheusMetrics registers it, and one
 * RegistryExposition per option set on the same registry. `compare` scrapes all of them and checks the
 * pages (text and gunzipped gzip) against the exporter's serializer; it returns the pages.
 */
const setup = Effect.gen(function*() {
  const exporter = new PrometheusExporter({ preventServerStart: true })
  const resourceLayer = Resource.layer({
    serviceName: "keel-test",
    serviceVersion: "1.2.3",
    attributes: { "deployment.environment": "a \"b\"\nc\\d" }
  })
  const exportOptions: MetricExport.ExportOptions = { prometheusNames: true }
  yield* MetricExport.register([exporter], exportOptions).pipe(Effect.provide(resourceLayer))
  const resource = yield* Effect.provide(Effect.service(Resource.Resource), resourceLayer)
  const context = yield* Effect.context<never>()
  const expositions = options.map((o) =>
    new RegistryExposition(context, { ...o, resourceAttributes: resource.attributes, ...exportOptions })
  )
  const reference = Effect.promise(() => exporter.collect()).pipe(
    Effect.map(({ resourceMetrics }) =>
      options.map((o) =>
        new PrometheusSerializer(o.prefix, false, undefined, o.withoutTargetInfo, o.withoutScopeInfo).serialize(resourceMetrics)
      )
    )
  )
  const compare = (label: string) =>
    Effect.gen(function*() {
      const expected = yield* reference
      return expositions.map((e, i) => {
        const page = e.collect()
        assert.isDefined(page, label)
        assert.strictEqual(page!.text(), expected[i], `${label}, options ${i}`)
        assert.strictEqual(gunzipSync(Buffer.concat(page!.gzip(1))).toString("utf8"), expected[i], `${label}, gzip, options ${i}`)
        return page!
      })
    })
  return { expositions, compare, registry: Context.get(context, Metric.MetricRegistry) }
})

const run = <A, E>(self: Effect.Effect<A, E, import("effect/Scope").Scope>) =>
  self.pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))

describe("RegistryExposition", () => {
  it.effect("writes the exporter's page for every metric kind, with escaping, units and name clashes", () =>
    run(Effect.gen(function*() {
      const { compare } = yield* setup
      yield* compare("empty registry")
      const h = Metric.histogram("mcp.client.operation.duration", { description: "d\\with\nnewline", boundaries: [0.01, 0.1, 1] })
      yield* Metric.update(Metric.withAttributes(h, { "gen_ai.tool.name": "we\"ird\\na\nme", "x-y.z": "1", "ünï": "✓ 🚀" }), 0.05)
      yield* Metric.update(Metric.withAttributes(h, { "gen_ai.tool.name": "plain" }), 5)
      yield* Metric.update(h, 0.5)
      yield* Metric.update(Metric.histogram("open_seconds", { boundaries: [1, Number.POSITIVE_INFINITY] }), 3)
      yield* Metric.update(Metric.histogram("empty", { boundaries: [] }), 3)
      yield* Metric.update(Metric.counter("keel.tool.calls", { incremental: true }), 3)
      yield* Metric.update(Metric.counter("already_total", { incremental: true }), 1)
      yield* Metric.update(Metric.counter("big", { bigint: true, incremental: true }), 12345678901234567890n)
      yield* Metric.update(Metric.counter("updown"), -2.5)
      yield* Metric.update(Metric.withAttributes(Metric.gauge("9lives"), { a: "b", unit: "By" }), 1.5)
      yield* Metric.update(Metric.withAttributes(Metric.gauge("timed"), { time_unit: "ms" }), 1e21)
      yield* Metric.update(Metric.gauge("tiny"), 1.5e-7)
      yield* Metric.update(Metric.gauge("nan"), Number.NaN)
      yield* Metric.update(Metric.gauge("neg_inf"), Number.NEGATIVE_INFINITY)
      yield* Metric.update(Metric.gauge("keel_pool_acquire_duration_seconds_like"), Number.POSITIVE_INFINITY)
      yield* Metric.update(Metric.gauge("_"), 1) // skipped by the serializer
      yield* Metric.update(Metric.gauge("a.b"), 1) // the same Prometheus name as a_b, kept apart
      yield* Metric.update(Metric.gauge("a_b"), 2)
      // two metrics of number kinds under one id share the first one's family, as the producer does
      yield* Metric.update(Metric.withAttributes(Metric.counter("mixed", { description: "first" }), { k: "1" }), 1)
      yield* Metric.update(Metric.withAttributes(Metric.gauge("mixed", { description: "second" }), { k: "2" }), 2)
      const words = Metric.withAttributes(Metric.frequency("words"), { key: "shadowed", other: "x" })
      yield* Metric.update(words, "hello")
      yield* Metric.update(words, "wo\"rld")
      yield* Metric.update(words, "hello")
      yield* Metric.value(Metric.frequency("no_words")) // registered, no word yet
      yield* compare("every kind")
      yield* compare("every kind, from the cache")
    })))

  it.effect("stays identical to the exporter's page while series change, appear and disappear (property)", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              updates: fc.array(
                fc.record({
                  metric: fc.nat({ max: 7 }),
                  label: fc.constantFrom("a", "b", "x.y", "unit"),
                  value: fc.constantFrom("v", "w", "we\"ird\n", "", "1", "ü"),
                  x: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5 }), fc.double({ min: -5, max: 50, noNaN: true }))
                }),
                { maxLength: 10 }
              ),
              // series to drop from the registry before this scrape (indices into its keys)
              removals: fc.array(fc.nat({ max: 30 }), { maxLength: 3 })
            }),
            { minLength: 1, maxLength: 6 }
          ),
          async (steps) => {
            const metrics: ReadonlyArray<Metric.Metric<any, any>> = [
              Metric.counter("calls", { incremental: true }),
              Metric.counter("updown"),
              Metric.gauge("level"),
              Metric.histogram("latency_seconds", { boundaries: [0.1, 1, 10] }),
              Metric.histogram("mcp.client.operation.duration", { boundaries: [5] }),
              Metric.frequency("words"),
              Metric.gauge("level", { description: "the same id, another description" }),
              Metric.counter("calls", { incremental: false, description: "the same id, not monotonic" })
            ]
            await Effect.runPromise(run(Effect.gen(function*() {
              const { compare, registry } = yield* setup
              let i = 0
              for (const step of steps) {
                const keys = [...registry.keys()]
                for (const r of step.removals) if (keys.length > 0) registry.delete(keys[r % keys.length]!)
                for (const u of step.updates) {
                  const tagged = Metric.withAttributes(metrics[u.metric]!, { [u.label]: u.value })
                  yield* Metric.update(tagged, u.metric === 5 ? u.value || "empty" : u.x)
                }
                yield* compare(`step ${i++}`)
              }
            })))
          }
        ),
        { numRuns: 60 }
      )
    ))

  it.effect("reuses unchanged blocks as they are; rewrites the block of a changed or removed series", () =>
    run(Effect.gen(function*() {
      const { compare, registry } = yield* setup
      const h = Metric.histogram("h", { boundaries: [1, 10] })
      const c = Metric.counter("c", { incremental: true })
      for (let i = 0; i < 3000; i++) {
        yield* Metric.update(Metric.withAttributes(h, { tool: `t${i}` }), i % 20)
        yield* Metric.update(Metric.withAttributes(c, { tool: `t${i}` }), 1)
      }
      const first = (yield* compare("first"))[0]!
      assert.isAbove(first.blocks.length, 4)
      for (const b of first.blocks) assert.isAtMost(b.bytes.length, 2 * BlockSize + 4096)

      // nothing changed: the very same blocks (and gzip members)
      const gzip = first.gzip(1)
      const again = (yield* compare("again"))[0]!
      assert.isTrue(again.blocks.every((b, i) => b === first.blocks[i]))
      assert.isTrue(again.gzip(1).every((g, i) => g === gzip[i]))

      // one series changes: its block alone is new, and holds the new value
      yield* Metric.update(Metric.withAttributes(c, { tool: "t1500" }), 41)
      const changed = (yield* compare("one changed"))[0]!
      const fresh = changed.blocks.filter((b) => !first.blocks.includes(b))
      assert.strictEqual(fresh.length, 1)
      assert.include(fresh[0]!.bytes.toString("utf8"), "c_total{tool=\"t1500\"} 42\n")
      assert.notInclude(changed.text(), "c_total{tool=\"t1500\"} 1\n")
      // the earlier page is still the earlier page
      assert.include(first.text(), "c_total{tool=\"t1500\"} 1\n")

      // a series removed: gone from the next page, its block rewritten
      for (const [key, meta] of registry) if (meta.id === "h" && meta.attributes?.["tool"] === "t2000") registry.delete(key)
      const removed = (yield* compare("one removed"))[0]!
      assert.notInclude(removed.text(), "h_count{tool=\"t2000\"}")
      assert.include(removed.text(), "c_total{tool=\"t2000\"} 1\n")
      assert.strictEqual(removed.blocks.filter((b) => !changed.blocks.includes(b)).length, 1)

      // every series changed: every block rewritten, still the exporter's page
      for (let i = 0; i < 3000; i++) yield* Metric.update(Metric.withAttributes(c, { tool: `t${i}` }), 1)
      const all = (yield* compare("all changed"))[0]!
      for (const b of all.blocks) if (b.bytes.includes("c_total{")) assert.notInclude(removed.blocks, b)
      assert.include(all.text(), "c_total{tool=\"t1500\"} 43\n")
    })))

  it.effect("a page smaller than a block is kept whole too (and its gzip member)", () =>
    run(Effect.gen(function*() {
      const { compare } = yield* setup
      yield* Metric.update(Metric.gauge("g"), 1)
      const [first] = yield* compare("first")
      assert.strictEqual(first!.blocks.length, 1)
      const member = first!.gzip(1)[0]
      const [again] = yield* compare("again")
      assert.strictEqual(again!.blocks[0], first!.blocks[0])
      assert.isTrue(again!.gzipReady(1))
      assert.strictEqual(again!.gzip(1)[0], member)
      yield* Metric.update(Metric.gauge("g"), 2)
      const [changed] = yield* compare("changed")
      assert.notStrictEqual(changed!.blocks[0], first!.blocks[0])
      assert.notStrictEqual(changed!.gzip(1)[0], member)
    })))

  it.effect("a family whose first entry changes is rewritten whole (header and series), forgotten series are dropped", () =>
    run(Effect.gen(function*() {
      const { compare, expositions, registry } = yield* setup
      // the family's descriptor (and so its name: calls_total or calls) comes from its first entry
      yield* Metric.update(Metric.withAttributes(Metric.counter("calls", { incremental: true }), { a: "1" }), 1)
      yield* Metric.update(Metric.withAttributes(Metric.counter("calls", { description: "up and down" }), { a: "2" }), 2)
      yield* Metric.update(Metric.withAttributes(Metric.gauge("level", { description: "first" }), { a: "1" }), 1)
      yield* Metric.update(Metric.withAttributes(Metric.gauge("level", { description: "second" }), { a: "2" }), 2)
      const before = (yield* compare("before"))[0]!.text()
      assert.include(before, "calls_total{a=\"2\"} 2\n")
      assert.include(before, "# HELP level first\n")
      assert.strictEqual(expositions[0]!.cachedSeries, 4)
      for (const [key, meta] of registry) if (meta.attributes?.["a"] === "1") registry.delete(key)
      const after = (yield* compare("after"))[0]!.text()
      assert.include(after, "calls{a=\"2\"} 2\n")
      assert.include(after, "# HELP level second\n")
      assert.strictEqual(expositions[0]!.cachedSeries, 2)
    })))

  it.effect("checks a histogram's every bucket, not only its count and sum", () =>
    run(Effect.gen(function*() {
      const { compare, registry } = yield* setup
      // a registry entry with its own hooks (as Metric's registerUnsafe makes): buckets move, count and sum do not
      let buckets: Array<[number, number]> = [[1, 1], [10, 2]]
      registry.set("custom", {
        id: "custom_histogram",
        type: "Histogram",
        description: undefined,
        attributes: { a: "b" },
        hooks: { get: () => ({ buckets, count: 2, sum: 3, min: 0, max: 5 }), update: () => {}, modify: () => {} }
      })
      const before = (yield* compare("before"))[0]!.text()
      assert.include(before, "custom_histogram_bucket{a=\"b\",le=\"1\"} 1\n")
      buckets = [[1, 0], [10, 2]]
      const after = (yield* compare("after"))[0]!.text()
      assert.include(after, "custom_histogram_bucket{a=\"b\",le=\"1\"} 0\n")
    })))

  it.effect("the multi-member gzip page decodes with streaming gunzip too", () =>
    run(Effect.gen(function*() {
      const { expositions } = yield* setup
      for (let i = 0; i < 4000; i++) yield* Metric.update(Metric.withAttributes(Metric.gauge("g"), { n: `${i}` }), i)
      const page: Page = expositions[0]!.collect()!
      const members = page.gzip(6)
      assert.isAbove(members.length, 1)
      const streamed = yield* Effect.promise(() =>
        new Promise<Buffer>((resolve, reject) => {
          const chunks: Array<Buffer> = []
          const gunzip = createGunzip()
          gunzip.on("data", (c: Buffer) => chunks.push(c))
          gunzip.on("end", () => resolve(Buffer.concat(chunks)))
          gunzip.on("error", reject)
          for (const m of members) gunzip.write(m)
          gunzip.end()
        })
      )
      assert.deepStrictEqual(streamed, Buffer.concat(page.buffers()))
    })))

  it.effect("leaves a Summary, or two kinds under one id, to the exporter (collect answers undefined)", () =>
    run(Effect.gen(function*() {
      const { compare, expositions, registry } = yield* setup
      yield* Metric.update(Metric.gauge("g"), 1)
      yield* compare("before")
      const summary = Metric.summary("s", { maxAge: "1 minute", maxSize: 10, quantiles: [0.5] })
      yield* Metric.update(summary, 1)
      assert.isUndefined(expositions[0]!.collect())
      for (const [key, meta] of registry) if (meta.type === "Summary") registry.delete(key)
      yield* Metric.update(Metric.gauge("g"), 2)
      yield* compare("summary gone")
      yield* Metric.update(Metric.histogram("g", { boundaries: [1] }), 1)
      assert.isUndefined(expositions[0]!.collect())
    })))
})
