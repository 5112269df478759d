/**
 * The `/metrics` page over real HTTP on 127.0.0.1: gzip when (and only when) the scraper asks for it,
 * the streamed page parsed by a real parser, and byte-identical to the exporter's own serializer (a
 * second layer with `serializer: "otel"` on the same registry) across scrapes while series change value,
 * appear and disappear, so a stale cached label or series text would show.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Metric } from "effect"
import { get as httpGet, type IncomingHttpHeaders } from "node:http"
import { gunzipSync } from "node:zlib"
import { acceptsGzip, PrometheusMetrics } from "./PrometheusMetrics.ts"
import { parseExposition, total } from "./testing/exposition.ts"

interface Raw {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Buffer
}

/** GET with node:http (which, unlike fetch, does not decode the body), with the given headers. */
const getRaw = (url: string, headers: Record<string, string> = {}, method = "GET"): Effect.Effect<Raw> =>
  Effect.promise(() =>
    new Promise<Raw>((resolve, reject) => {
      const request = httpGet(url, { headers, method }, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
        res.on("error", reject)
      })
      request.on("error", reject)
    })
  )

const H = "mcp_client_operation_duration_seconds"
const histogram = Metric.histogram("mcp.client.operation.duration", { boundaries: [0.01, 0.1, 1, 10] })
const calls = Metric.counter("keel.tool.calls", { incremental: true })
const tools = Metric.gauge("keel.server.tools")

/** Records `n` servers × 40 tools of history (enough for a page of many chunks). */
const record = (servers: number, round: number) =>
  Effect.forEach(Array.from({ length: servers * 40 }, (_, i) => i), (i) => {
    const attrs = { mcp_server_name: `s${Math.floor(i / 40)}`, gen_ai_tool_name: `tool "${i % 40}"\n`, round: "r" }
    return Effect.all([
      Metric.update(Metric.withAttributes(histogram, attrs), (i % 7) * 0.05 * round),
      Metric.update(Metric.withAttributes(calls, attrs), 1),
      Metric.update(Metric.withAttributes(tools, { mcp_server_name: `s${Math.floor(i / 40)}` }), 40 + round)
    ], { discard: true })
  }, { discard: true })

describe("PrometheusMetrics /metrics", () => {
  it.live("gzip when asked: Content-Encoding gzip, decompresses to the uncompressed page; identity otherwise", () =>
    Effect.gen(function*() {
      const metrics = yield* PrometheusMetrics
      assert.strictEqual(metrics.host, "127.0.0.1")
      yield* record(20, 1)
      const plain = yield* getRaw(metrics.url)
      assert.strictEqual(plain.status, 200)
      assert.isUndefined(plain.headers["content-encoding"])
      assert.strictEqual(plain.headers["vary"], "Accept-Encoding")
      assert.include(plain.headers["content-type"] ?? "", "text/plain")
      const text = plain.body.toString("utf8")
      assert.isAbove(text.length, 200_000)

      // what Prometheus sends
      const zipped = yield* getRaw(metrics.url, { "accept-encoding": "gzip" })
      assert.strictEqual(zipped.status, 200)
      assert.strictEqual(zipped.headers["content-encoding"], "gzip")
      assert.isBelow(zipped.body.length, plain.body.length / 10)
      assert.strictEqual(gunzipSync(zipped.body).toString("utf8"), text)
      const promHeader = yield* getRaw(metrics.url, {
        "accept-encoding": "gzip, deflate;q=0.5, identity;q=0.1"
      })
      assert.strictEqual(promHeader.headers["content-encoding"], "gzip")
      assert.strictEqual(gunzipSync(promHeader.body).toString("utf8"), text)

      // not asked, or refused
      for (const header of ["identity", "br", "gzip;q=0", "deflate, gzip;q=0, *"]) {
        const r = yield* getRaw(metrics.url, { "accept-encoding": header })
        assert.isUndefined(r.headers["content-encoding"], header)
        assert.strictEqual(r.body.toString("utf8"), text, header)
      }
      // HEAD: the headers, no body
      const head = yield* getRaw(metrics.url, { "accept-encoding": "gzip" }, "HEAD")
      assert.strictEqual(head.status, 200)
      assert.strictEqual(head.headers["content-encoding"], "gzip")
      assert.strictEqual(head.body.length, 0)
      // the same page as metrics.scrape
      assert.strictEqual(yield* metrics.scrape, text)
    }).pipe(Effect.provide(PrometheusMetrics.layer({ port: 0 })), Effect.provideService(Metric.MetricRegistry, new Map())))

  it.live("gzip: false never compresses", () =>
    Effect.gen(function*() {
      const metrics = yield* PrometheusMetrics
      yield* record(1, 1)
      const r = yield* getRaw(metrics.url, { "accept-encoding": "gzip" })
      assert.isUndefined(r.headers["content-encoding"])
      assert.include(r.body.toString("utf8"), `${H}_bucket{`)
    }).pipe(Effect.provide(PrometheusMetrics.layer({ port: 0, gzip: false })), Effect.provideService(Metric.MetricRegistry, new Map())))

  it.live("the streamed page parses and stays byte-identical to the exporter's serializer while series change, appear and disappear", () =>
    Effect.gen(function*() {
      const registry = new Map()
      const pages = yield* Effect.gen(function*() {
        const keel = yield* PrometheusMetrics
        // a second exporter on the same registry, with the exporter's own serializer (kept open by the scope)
        const otel = Context.get(yield* Layer.build(PrometheusMetrics.layer({ port: 0, serializer: "otel" })), PrometheusMetrics)
        const compare = (round: number) =>
          Effect.gen(function*() {
            const zipped = yield* getRaw(keel.url, { "accept-encoding": "gzip" })
            const plain = yield* getRaw(keel.url)
            const reference = yield* getRaw(otel.url)
            const text = gunzipSync(zipped.body).toString("utf8")
            assert.strictEqual(text, reference.body.toString("utf8"), `round ${round}`)
            assert.strictEqual(plain.body.toString("utf8"), text, `round ${round}`)
            return text
          })
        const first = yield* compare(0)
        yield* record(10, 1)
        const second = yield* compare(1)
        // the same scrape again (every series from the cache)
        assert.strictEqual(yield* compare(1), second)
        // values change, new servers appear
        yield* record(15, 2)
        const third = yield* compare(2)
        // series disappear (dropped from the registry), one changes
        const keys = [...registry.keys()]
        for (let i = 0; i < keys.length; i += 3) registry.delete(keys[i])
        yield* Metric.update(Metric.withAttributes(tools, { mcp_server_name: "s1" }), 7)
        const fourth = yield* compare(3)
        return [first, second, third, fourth]
      }).pipe(Effect.scoped, Effect.provide(PrometheusMetrics.layer({ port: 0 })), Effect.provideService(Metric.MetricRegistry, registry))

      const second = parseExposition(pages[1]!)
      assert.strictEqual(second.types.get(H), "HISTOGRAM")
      assert.strictEqual(total(second, `${H}_count`), 400)
      assert.strictEqual(total(second, "keel_tool_calls_total", { mcp_server_name: "s3", gen_ai_tool_name: "tool \"5\"\n" }), 1)
      const third = parseExposition(pages[2]!)
      assert.strictEqual(total(third, `${H}_count`), 400 * 2 + 200)
      assert.strictEqual(total(third, "keel_server_tools", { mcp_server_name: "s12" }), 42)
      const fourth = parseExposition(pages[3]!)
      assert.isBelow(total(fourth, `${H}_count`), total(third, `${H}_count`))
      assert.strictEqual(total(fourth, "keel_server_tools", { mcp_server_name: "s1" }), 7)
      assert.notStrictEqual(pages[3], pages[2])
    }))
})

describe("PrometheusMetrics /metrics, kept between scrapes", () => {
  it.live("a changed series shows its new value on the next scrape, a removed one is gone; Content-Length; a Summary goes through the exporter", () =>
    Effect.gen(function*() {
      const registry = new Map()
      yield* Effect.gen(function*() {
        const keel = yield* PrometheusMetrics
        const otel = Context.get(yield* Layer.build(PrometheusMetrics.layer({ port: 0, serializer: "otel" })), PrometheusMetrics)
        yield* record(20, 1)
        const both = Effect.gen(function*() {
          const zipped = yield* getRaw(keel.url, { "accept-encoding": "gzip" })
          const plain = yield* getRaw(keel.url)
          // gzip members compressed as the page is written go out chunked; kept ones with a length
          const zippedLength = zipped.headers["content-length"]
          if (zippedLength === undefined) assert.strictEqual(zipped.headers["transfer-encoding"], "chunked")
          else assert.strictEqual(Number(zippedLength), zipped.body.length)
          assert.strictEqual(Number(plain.headers["content-length"]), plain.body.length)
          const text = plain.body.toString("utf8")
          assert.strictEqual(gunzipSync(zipped.body).toString("utf8"), text)
          assert.strictEqual(text, (yield* getRaw(otel.url)).body.toString("utf8"))
          return Object.assign(parseExposition(text), { zippedLength })
        })
        const labels = { mcp_server_name: "s7", gen_ai_tool_name: "tool \"3\"\n" }
        const before = yield* both
        assert.strictEqual(total(before, "keel_tool_calls_total", labels), 1)
        assert.isUndefined(before.zippedLength)
        // the same page twice (all from the cache, gzip members too), then one series changes
        assert.isDefined((yield* both).zippedLength)
        yield* Metric.update(Metric.withAttributes(calls, { ...labels, round: "r" }), 5)
        const changed = yield* both
        assert.strictEqual(total(changed, "keel_tool_calls_total", labels), 6)
        assert.strictEqual(total(changed, "keel_tool_calls_total"), total(before, "keel_tool_calls_total") + 5)
        // removed
        for (const [key, meta] of registry) {
          if (meta.id === "keel.tool.calls" && meta.attributes?.["mcp_server_name"] === "s7") registry.delete(key)
        }
        const removed = yield* both
        assert.strictEqual(total(removed, "keel_tool_calls_total", { mcp_server_name: "s7" }), 0)
        assert.strictEqual(total(removed, `${H}_count`, { mcp_server_name: "s7" }), 40)
        // a Summary (not written by Keel's writer): the exporter's path, the same page
        yield* Metric.update(Metric.summary("latency", { maxAge: "1 minute", maxSize: 10, quantiles: [0.5] }), 1)
        const withSummary = yield* both
        assert.strictEqual(total(withSummary, "latency_count_total"), 1)
      }).pipe(Effect.scoped, Effect.provide(PrometheusMetrics.layer({ port: 0 })), Effect.provideService(Metric.MetricRegistry, registry))
    }))
})

describe("PrometheusMetrics /metrics, a slow or vanishing scraper", () => {
  it.live("a scraper that stops reading gets the whole page once it reads again; one that leaves mid-page leaves the server serving", () =>
    Effect.gen(function*() {
      const metrics = yield* PrometheusMetrics
      yield* record(60, 1)
      const reference = (yield* getRaw(metrics.url)).body
      assert.isAbove(reference.length, 2_000_000)
      // pauses for 300 ms after the first chunk: the server waits for drain instead of queueing the page
      const slow = yield* Effect.promise(() =>
        new Promise<Buffer>((resolve, reject) => {
          httpGet(metrics.url, (res) => {
            const chunks: Array<Buffer> = []
            res.once("data", () => {
              res.pause()
              setTimeout(() => res.resume(), 300)
            })
            res.on("data", (c: Buffer) => chunks.push(c))
            res.on("end", () => resolve(Buffer.concat(chunks)))
            res.on("error", reject)
          }).on("error", reject)
        })
      )
      assert.isTrue(slow.equals(reference))
      // leaves after the first chunk
      yield* Effect.promise(() =>
        new Promise<void>((resolve, reject) => {
          const request = httpGet(metrics.url, (res) => {
            res.once("data", () => {
              request.destroy()
              resolve()
            })
          })
          request.on("error", () => {})
          setTimeout(() => reject(new Error("no data")), 10_000)
        })
      )
      const after = yield* getRaw(metrics.url, { "accept-encoding": "gzip" })
      assert.isTrue(gunzipSync(after.body).equals(reference))
    }).pipe(Effect.provide(PrometheusMetrics.layer({ port: 0 })), Effect.provideService(Metric.MetricRegistry, new Map())))
})

describe("PrometheusMetrics /metrics, a failing registry entry", () => {
  it.live("answers 500 with the reason while an entry cannot be read, then serves again", () =>
    Effect.gen(function*() {
      const registry = new Map()
      yield* Effect.gen(function*() {
        const metrics = yield* PrometheusMetrics
        yield* record(1, 1)
        registry.set("bad", {
          id: "bad",
          type: "Gauge",
          description: undefined,
          attributes: undefined,
          hooks: { get: () => { throw new Error("boom") }, update: () => {}, modify: () => {} }
        })
        const failed = yield* getRaw(metrics.url, { "accept-encoding": "gzip" })
        assert.strictEqual(failed.status, 500)
        assert.include(failed.body.toString("utf8"), "boom")
        registry.delete("bad")
        const ok = yield* getRaw(metrics.url, { "accept-encoding": "gzip" })
        assert.strictEqual(ok.status, 200)
        assert.include(gunzipSync(ok.body).toString("utf8"), `${H}_bucket{`)
      }).pipe(Effect.provide(PrometheusMetrics.layer({ port: 0 })), Effect.provideService(Metric.MetricRegistry, registry))
    }))
})

describe("acceptsGzip", () => {
  it("reads Accept-Encoding", () => {
    const cases: Array<[string | undefined, boolean]> = [
      [undefined, false],
      ["", false],
      ["gzip", true],
      ["GZIP", true],
      ["x-gzip", true],
      ["deflate, gzip;q=1.0, *;q=0.5", true],
      ["gzip;q=0", false],
      ["gzip; q=0.001", true],
      ["br, deflate", false],
      ["*", true],
      ["*;q=0", false],
      ["gzip;q=0, *", false],
      ["identity", false]
    ]
    for (const [header, expected] of cases) assert.strictEqual(acceptsGzip(header), expected, String(header))
  })
})
