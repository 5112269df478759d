/**
 * PrometheusMetrics end to end: real tool calls against the demo server (stdio and Streamable HTTP),
 * recorded with McpMetrics, scraped over real HTTP from 127.0.0.1, parsed with a real exposition parser.
 */
import { assert, describe, it } from "@effect/vitest"
import * as CircuitBreaker from "@keel/core/CircuitBreaker"
import * as KeyedCache from "@keel/core/KeyedCache"
import { McpClient, type McpConnection } from "@keel/core/McpClient"
import * as McpMetrics from "@keel/core/McpMetrics"
import { networkTransport, type ServerConfig } from "@keel/core/ServerConfig"
import { demoHttpServer } from "@keel/core/testing/processes"
import { decodeServerConfig } from "@keel/core/ServerConfig"
import { demoStdio } from "@keel/demo-server"
import { AggregationTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { Effect, Layer, Metric, Schema } from "effect"
import { createServer } from "node:net"
import { MetricsSnapshot } from "./MetricsSnapshot.ts"
import { PrometheusMetrics } from "./PrometheusMetrics.ts"
import { type Exposition, fetchText, parseExposition, select, total } from "./testing/exposition.ts"

const SECRET = "s3cr3t-token-do-not-leak-8f41c2"
const HEADER_SECRET = "Bearer h3ader-s3cret-77aa01"

/** A fresh metric registry per test, so counts are exact. */
const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.provideService(self, Metric.MetricRegistry, new Map())

const scrape = (url: string) =>
  Effect.promise(async () => {
    const { status, text, contentType } = await fetchText(url)
    assert.strictEqual(status, 200)
    assert.include(contentType ?? "", "text/plain")
    return { text, exposition: parseExposition(text) }
  })

const H = "mcp_client_operation_duration_seconds"

/** Calls a tool through `track`, the way McpClientManager.callTool records. */
const call = (c: McpConnection, tool: string, args: Record<string, unknown> = {}, timeout?: number) =>
  c.callTool(tool, args, timeout === undefined ? undefined : { timeout }).pipe(
    McpMetrics.track({ server: c.name, transport: networkTransport(c.config), method: "tools/call", tool })
  )

const stdioConfig = (flags: Parameters<typeof demoStdio>[0] = {}) =>
  decodeServerConfig({ type: "stdio", ...demoStdio(flags), env: { API_TOKEN: SECRET } })

/** The tool label values of `H` for `server`. */
const toolLabels = (e: Exposition, server: string) =>
  new Set(select(e, `${H}_count`, { mcp_server_name: server }).map((s) => s.labels["gen_ai_tool_name"]))

describe("PrometheusMetrics", () => {
  it.live("counts real tool calls by tool and error.type, with consistent histograms and no secrets", () =>
    Effect.gen(function*() {
      const metrics = yield* PrometheusMetrics
      assert.strictEqual(metrics.host, "127.0.0.1")
      assert.notStrictEqual(metrics.port, 0)
      const config = yield* stdioConfig()
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* McpClient.connect("demo", config)
        yield* McpMetrics.trackSession("demo", networkTransport(config))
        const { tools } = yield* c.listTools().pipe(
          McpMetrics.track({ server: "demo", transport: "pipe", method: "tools/list" })
        )
        yield* McpMetrics.recordToolCount("demo", tools.length)
        for (let i = 0; i < 5; i++) yield* call(c, "echo", { message: `hi ${i}` })
        for (let i = 0; i < 3; i++) yield* call(c, "add", { a: i, b: 1 })
        for (let i = 0; i < 2; i++) yield* Effect.flip(call(c, "fail", { kind: "isError", message: "disk full" }))
        yield* Effect.flip(call(c, "fail", { kind: "protocol", code: -32001, message: "nope" }))
        const timeout = yield* Effect.flip(call(c, "slow", { ms: 5_000 }, 150))
        assert.strictEqual(timeout._tag, "McpTimeoutError")

        const { text, exposition: e } = yield* scrape(metrics.url)
        assert.strictEqual(e.types.get(H), "HISTOGRAM")
        assert.strictEqual(e.types.get("keel_tool_calls_total"), "COUNTER")
        const base = { mcp_server_name: "demo", mcp_method_name: "tools/call", network_transport: "pipe" }
        assert.strictEqual(total(e, `${H}_count`, { ...base, gen_ai_tool_name: "echo", error_type: undefined }), 5)
        assert.strictEqual(total(e, `${H}_count`, { ...base, gen_ai_tool_name: "add", error_type: undefined }), 3)
        assert.strictEqual(total(e, `${H}_count`, { ...base, gen_ai_tool_name: "fail", error_type: "tool_error" }), 2)
        assert.strictEqual(
          total(e, `${H}_count`, { ...base, gen_ai_tool_name: "fail", error_type: "-32001", rpc_response_status_code: "-32001" }),
          1
        )
        assert.strictEqual(total(e, `${H}_count`, { ...base, gen_ai_tool_name: "slow", error_type: "McpTimeoutError" }), 1)
        assert.strictEqual(total(e, `${H}_count`, { ...base }), 12)
        assert.strictEqual(total(e, `${H}_count`, { mcp_method_name: "tools/list" }), 1)
        // histogram consistency: +Inf bucket == count for every series, buckets are cumulative, the
        // recommended boundaries are there, and the timed-out call sits above 0.1 s
        for (const count of select(e, `${H}_count`)) {
          const buckets = select(e, `${H}_bucket`, count.labels)
          assert.deepStrictEqual(
            buckets.map((b) => b.labels["le"]),
            [...McpMetrics.OperationDurationBoundaries.map(String), "+Inf"]
          )
          assert.strictEqual(buckets.at(-1)?.value, count.value)
          for (let i = 1; i < buckets.length; i++) assert.isAtLeast(buckets[i]!.value, buckets[i - 1]!.value)
        }
        const slow = { ...base, gen_ai_tool_name: "slow", error_type: "McpTimeoutError" }
        assert.strictEqual(total(e, `${H}_bucket`, { ...slow, le: "0.1" }), 0)
        assert.isAtLeast(total(e, `${H}_sum`, slow), 0.14)
        // the seed's tool_execution_total / tool_execution_errors_total
        assert.strictEqual(total(e, "keel_tool_calls_total", { mcp_server_name: "demo" }), 12)
        assert.strictEqual(total(e, "keel_tool_calls_total", { gen_ai_tool_name: "echo", outcome: "success" }), 5)
        assert.strictEqual(total(e, "keel_tool_calls_total", { outcome: "tool_error" }), 2)
        assert.strictEqual(total(e, "keel_server_connected", { mcp_server_name: "demo", network_transport: "pipe" }), 1)
        assert.strictEqual(total(e, "keel_server_tools", { mcp_server_name: "demo" }), tools.length)
        assert.match(text, /# UNIT mcp_client_operation_duration_seconds s/)
        assert.notInclude(text, SECRET)
        assert.notInclude(text, "API_TOKEN")

        // the typed snapshot agrees, and encodes
        const snap = yield* metrics.snapshot
        const demo = snap.servers.find((s) => s.server === "demo")!
        assert.deepInclude(demo, { connected: true, transport: "pipe", tools: tools.length, calls: 12, errors: 4 })
        assert.deepStrictEqual(demo.errorsByType, { tool_error: 2, "-32001": 1, McpTimeoutError: 1 })
        assert.isBelow(demo.p50Seconds!, 0.1)
        assert.isAtLeast(demo.p99Seconds!, 0.1)
        assert.isAtMost(demo.p99Seconds!, 1)
        assert.deepStrictEqual(snap.tools, { calls: 12, errors: 4 })
        assert.isUndefined(snap.pool)
        const encoded = Schema.encodeSync(MetricsSnapshot)(snap)
        assert.deepStrictEqual(JSON.parse(JSON.stringify(encoded)), encoded)
      }))
      // the session ended: connected drops to 0 and its duration is recorded
      const { exposition: after } = yield* scrape(metrics.url)
      assert.strictEqual(total(after, "keel_server_connected", { mcp_server_name: "demo" }), 0)
      assert.strictEqual(total(after, "mcp_client_session_duration_seconds_count", { mcp_server_name: "demo", network_transport: "pipe" }), 1)
      assert.strictEqual((yield* metrics.snapshot).servers[0]?.connected, false)
      // scrape without HTTP gives the same families
      const direct = parseExposition(yield* metrics.scrape)
      assert.deepStrictEqual([...direct.types.keys()].sort(), [...after.types.keys()].sort())
    }).pipe(Effect.provide(PrometheusMetrics.layer({ port: 0 })), isolated))

  it.live("over Streamable HTTP: network.transport=tcp, and header values never reach a label", () =>
    Effect.gen(function*() {
      const metrics = yield* PrometheusMetrics
      const server = yield* demoHttpServer()
      const config: ServerConfig = yield* decodeServerConfig({
        type: "http",
        url: server.url,
        headers: { Authorization: HEADER_SECRET, "X-Api-Key": SECRET }
      })
      const c = yield* McpClient.connect("remote", config)
      yield* McpMetrics.trackSession("remote", networkTransport(config))
      for (let i = 0; i < 4; i++) yield* call(c, "echo", { message: "x" })
      const { text, exposition: e } = yield* scrape(metrics.url)
      assert.strictEqual(total(e, `${H}_count`, { mcp_server_name: "remote", network_transport: "tcp", gen_ai_tool_name: "echo" }), 4)
      for (const s of [SECRET, HEADER_SECRET, "h3ader-s3cret", "Authorization", "X-Api-Key", server.url]) assert.notInclude(text, s)
    }).pipe(Effect.scoped, Effect.provide(PrometheusMetrics.layer({ port: 0 })), isolated))

  it.live("caps tool-name cardinality against a server advertising 5,000 tools", () =>
    Effect.gen(function*() {
      const metrics = yield* PrometheusMetrics
      const config = yield* stdioConfig({ extraTools: 5000 })
      const c = yield* McpClient.connect("many", config)
      const { tools } = yield* c.listTools()
      // 5,000 generated tools plus the demo server's own (their number changes as the demo grows)
      assert.strictEqual(tools.filter((t) => t.name.startsWith("tool_")).length, 5000)
      const advertised = tools.length
      // 150 real calls to distinct generated tools, then every advertised name recorded once more
      const called = tools.filter((t) => t.name.startsWith("tool_")).slice(0, 150)
      yield* Effect.forEach(called, (t) => call(c, t.name, { message: "m" }), { concurrency: 8, discard: true })
      for (const t of tools) {
        yield* McpMetrics.recordOperation({ server: "many", transport: "pipe", method: "tools/call", tool: t.name, durationSeconds: 0.001 })
      }
      const { text, exposition: e } = yield* scrape(metrics.url)
      const labels = toolLabels(e, "many")
      assert.strictEqual(labels.size, 25 + 1)
      assert.isTrue(labels.has("_other"))
      assert.strictEqual(total(e, `${H}_count`, { mcp_server_name: "many" }), 150 + advertised)
      assert.strictEqual(total(e, `${H}_count`, { mcp_server_name: "many", gen_ai_tool_name: "_other" }), 150 + advertised - 2 * 25)
      assert.strictEqual(total(e, "keel_metrics_label_overflow_total", { attribute: "gen_ai.tool.name" }), 150 + advertised - 2 * 25)
      // series count stays small: one +Inf bucket line per series
      assert.isAtMost(select(e, `${H}_bucket`, { le: "+Inf" }).length, 26)
      assert.isBelow(text.length, 200_000)
    }).pipe(Effect.scoped, Effect.provide(PrometheusMetrics.layer({ port: 0, labelCap: { maxToolsPerServer: 25 } })), isolated))

  it.live("breaker state changes and cache hits and misses are visible on /metrics and in the snapshot", () =>
    Effect.gen(function*() {
      const metrics = yield* PrometheusMetrics
      const config = yield* stdioConfig()
      const c = yield* McpClient.connect("demo", config)
      const breaker = yield* CircuitBreaker.make("demo", { consecutiveFailureThreshold: 2 })
      const cache = yield* KeyedCache.make<string, number>({ name: "tools", capacity: 10, keyAttributes: (k) => ({ server: k }) })
      yield* cache.get("demo", Effect.succeed(1)) // miss
      yield* cache.get("demo", Effect.succeed(1)) // hit
      yield* cache.get("demo", Effect.succeed(1)) // hit
      yield* breaker.execute(call(c, "echo", { message: "ok" }))
      const closed = yield* scrape(metrics.url)
      assert.strictEqual(total(closed.exposition, "keel_circuit_breaker_state", { server: "demo" }), 0)
      assert.strictEqual(total(closed.exposition, "keel_cache_requests_total", { cache: "tools", result: "hit" }), 2)
      assert.strictEqual(total(closed.exposition, "keel_cache_requests_total", { cache: "tools", result: "miss" }), 1)
      for (let i = 0; i < 2; i++) {
        yield* Effect.flip(breaker.execute(call(c, "fail", { kind: "protocol", code: -32000, message: "down" })))
      }
      const rejected = yield* Effect.flip(breaker.execute(call(c, "echo", { message: "no" })))
      assert.strictEqual(rejected._tag, "CircuitOpenError")
      const open = yield* scrape(metrics.url)
      assert.strictEqual(total(open.exposition, "keel_circuit_breaker_state", { server: "demo" }), 1)
      assert.isAtLeast(total(open.exposition, "keel_circuit_breaker_calls_total", { server: "demo", outcome: "rejected" }), 1)
      const snap = yield* metrics.snapshot
      assert.strictEqual(snap.servers.find((s) => s.server === "demo")?.breaker, "open")
      assert.deepInclude(snap.cache!, { hits: 2, misses: 1, entries: 1 })
      assert.closeTo(snap.cache!.hitRatio, 2 / 3, 1e-9)
    }).pipe(Effect.scoped, Effect.provide(PrometheusMetrics.layer({ port: 0 })), isolated))

  it.live("binds to 127.0.0.1, serves only the configured path, and stops its server with the scope", () =>
    Effect.gen(function*() {
      const url = yield* Effect.scoped(Effect.gen(function*() {
        const metrics = yield* PrometheusMetrics
        assert.strictEqual(metrics.host, "127.0.0.1")
        assert.match(metrics.url, /^http:\/\/127\.0\.0\.1:\d+\/prom$/)
        const other = yield* Effect.promise(() => fetchText(metrics.url.replace(/\/prom$/, "/metrics")))
        assert.strictEqual(other.status, 404)
        return metrics.url
      }).pipe(Effect.provide(PrometheusMetrics.layer({ port: 0, path: "/prom" }))))
      const refused = yield* Effect.promise(() => fetch(url).then(() => "answered", () => "refused"))
      assert.strictEqual(refused, "refused")
    }).pipe(isolated))

  it.live("fails with PrometheusMetricsError when the port is taken or the config is invalid", () =>
    Effect.gen(function*() {
      const blocker = createServer()
      const port = yield* Effect.promise(() =>
        new Promise<number>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve((blocker.address() as { port: number }).port)))
      )
      const taken = yield* Effect.flip(Layer.build(PrometheusMetrics.layer({ port })).pipe(Effect.scoped))
      yield* Effect.promise(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
      assert.strictEqual(taken.reason, "listen")
      assert.include(taken.message, String(port))
      const invalid = yield* Effect.flip(Layer.build(PrometheusMetrics.layer({ port: 70_000 })).pipe(Effect.scoped))
      assert.strictEqual(invalid.reason, "config")
    }).pipe(isolated))

  it.live("layerReader: the same metrics reach any OTel MetricReader (here in-memory, as OTLP would) unchanged", () =>
    Effect.gen(function*() {
      const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
      const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 })
      yield* Effect.gen(function*() {
        yield* McpMetrics.recordOperation({ server: "s", transport: "tcp", method: "tools/call", tool: "t", durationSeconds: 0.3 })
        yield* McpMetrics.recordOperation({ server: "s", transport: "tcp", method: "tools/call", tool: "t", durationSeconds: 0.1, errorType: "tool_error" })
        yield* Effect.promise(() => reader.forceFlush())
        const found = exporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))
          .filter((m) => m.descriptor.name === McpMetrics.Names.operationDuration)
        const last = found.at(-1)!
        assert.strictEqual(last.descriptor.unit, "s")
        assert.strictEqual(last.dataPoints.length, 2)
        const points = last.dataPoints.map((p) => ({ attributes: p.attributes, count: (p.value as { count: number }).count }))
        assert.deepInclude(points, {
          attributes: { "mcp.server.name": "s", "mcp.method.name": "tools/call", "network.transport": "tcp", "gen_ai.tool.name": "t", "error.type": "tool_error" },
          count: 1
        })
      }).pipe(Effect.provide(PrometheusMetrics.layerReader(() => reader, { labelCap: { maxToolsPerServer: 3 } })))
    }).pipe(isolated))
})
