/**
 * The Grafana dashboard reads only series the exporter really emits: every PromQL expression's metric
 * names and matcher labels, and every legend label, are found on a real `/metrics` scrape taken after
 * exercising tool calls (demo server), a session, a connection pool, a tool cache and a circuit breaker.
 */
import { assert, describe, it } from "@effect/vitest"
import * as CircuitBreaker from "@keel/core/CircuitBreaker"
import { ConnectionPool } from "@keel/core/ConnectionPool"
import * as KeyedCache from "@keel/core/KeyedCache"
import { McpClient } from "@keel/core/McpClient"
import * as McpMetrics from "@keel/core/McpMetrics"
import { decodeServerConfig } from "@keel/core/ServerConfig"
import { demoStdio } from "@keel/demo-server"
import { Effect, Fiber, Metric } from "effect"
import { readFileSync } from "node:fs"
import { PrometheusMetrics } from "./PrometheusMetrics.ts"
import { type Exposition, fetchText, parseExposition } from "./testing/exposition.ts"
import { labelValuesQuery, type Selector, selectors } from "./testing/promql.ts"

interface Target {
  readonly expr: string
  readonly legendFormat?: string
}
interface Panel {
  readonly title: string
  readonly type: string
  readonly targets?: ReadonlyArray<Target>
}
interface Dashboard {
  readonly panels: ReadonlyArray<Panel>
  readonly templating: { readonly list: ReadonlyArray<{ readonly query: { readonly query: string } }> }
}

const dashboard = JSON.parse(
  readFileSync(new URL("../grafana/keel-dashboard.json", import.meta.url), "utf8")
) as Dashboard


describe("PromQL lexer", () => {
  it("finds metric names and matcher labels, not functions, keywords or grouping labels", () => {
    assert.deepStrictEqual(
      selectors(
        "histogram_quantile(0.95, sum by (le, a) (rate(x_bucket{m=\"tools/call\",e!=\"\",s=~\"$server\"}[$__rate_interval]))) / on (a) group_left y"
      ),
      [{ metric: "x_bucket", labels: ["m", "e", "s"] }, { metric: "y", labels: [] }]
    )
    assert.deepStrictEqual(labelValuesQuery("label_values(x_count, mcp_server_name)"), { metric: "x_count", labels: ["mcp_server_name"] })
  })
})

const exercise = Effect.gen(function*() {
  const metrics = yield* PrometheusMetrics
  const config = yield* decodeServerConfig({ type: "stdio", ...demoStdio() })
  const track = (tool: string) => McpMetrics.track({ server: "demo", transport: "pipe", method: "tools/call", tool })
  const breaker = yield* CircuitBreaker.make("demo", { consecutiveFailureThreshold: 2 })
  yield* Effect.scoped(Effect.gen(function*() {
    const c = yield* McpClient.connect("demo", config)
    yield* McpMetrics.trackSession("demo", "pipe")
    const { tools } = yield* c.listTools()
    yield* McpMetrics.recordToolCount("demo", tools.length)
    for (const tool of ["echo", "add"]) yield* breaker.execute(c.callTool(tool, { message: "x", a: 1, b: 2 }).pipe(track(tool)))
    // a third distinct tool goes over the cap of 2 (label overflow)
    yield* Effect.flip(breaker.execute(c.callTool("fail", { kind: "isError", message: "no" }).pipe(track("fail"))))
    yield* Effect.flip(breaker.execute(c.callTool("fail", { kind: "protocol", code: -32000, message: "no" }).pipe(track("fail"))))
  }))
  // a pool of one session lent to one borrower at a time: the second borrower waits
  const pool = yield* ConnectionPool.make({ maxConnections: 1, maxRequestsPerConnection: 1 })
  yield* pool.add("demo", config)
  const holder = yield* Effect.forkChild(pool.use("demo", (c) => c.callTool("slow", { ms: 300 })))
  yield* Effect.sleep(100)
  yield* pool.use("demo", (c) => c.callTool("echo", { message: "after a wait" }))
  yield* Fiber.join(holder)
  const cache = yield* KeyedCache.make<string, number>({ name: "tools", capacity: 1 })
  yield* cache.get("a", Effect.succeed(1))
  yield* cache.get("a", Effect.succeed(1))
  yield* cache.get("b", Effect.succeed(2)) // evicts a (capacity)
  const { status, text } = yield* Effect.promise(() => fetchText(metrics.url))
  assert.strictEqual(status, 200)
  // the typed snapshot sees the same pool, cache and breaker
  const snap = yield* metrics.snapshot
  assert.deepInclude(snap.pool!, { total: 1, waiting: 0 })
  assert.isAtLeast(snap.pool!.acquires, 2)
  assert.isAtLeast(snap.pool!.acquireP99Seconds!, 0.05)
  assert.deepInclude(snap.cache!, { hits: 1, misses: 2, evictions: 1, entries: 1 })
  assert.strictEqual(snap.servers.find((s) => s.server === "demo")?.breaker, "closed")
  return parseExposition(text)
})

const labelsOf = (e: Exposition, metric: string): Set<string> => {
  const labels = new Set<string>()
  for (const s of e.samples) if (s.name === metric) for (const k of Object.keys(s.labels)) labels.add(k)
  return labels
}

describe("keel-dashboard.json", () => {
  it.live("every expression reads series /metrics really emits", () =>
    Effect.gen(function*() {
      const e = yield* exercise
      const emitted = new Set(e.samples.map((s) => s.name))
      const checked: Array<string> = []
      const check = (where: string, selector: Selector) => {
        if (!emitted.has(selector.metric)) assert.fail(`${where}: ${selector.metric} is not emitted`)
        const labels = labelsOf(e, selector.metric)
        for (const l of selector.labels) assert.isTrue(labels.has(l), `${where}: ${selector.metric} has no label ${l}`)
        checked.push(selector.metric)
      }
      const panels = dashboard.panels.filter((p) => p.type !== "row")
      assert.isAtLeast(panels.length, 12)
      for (const panel of panels) {
        assert.isAtLeast(panel.targets?.length ?? 0, 1, panel.title)
        for (const target of panel.targets ?? []) {
          const found = selectors(target.expr)
          assert.isAtLeast(found.length, 1, `${panel.title}: ${target.expr}`)
          for (const s of found) check(panel.title, s)
          // legend labels must exist on a series the target reads
          const legendLabels = [...(target.legendFormat ?? "").matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!)
          const available = new Set(found.flatMap((s) => [...labelsOf(e, s.metric)]))
          for (const l of legendLabels) assert.isTrue(available.has(l), `${panel.title}: legend label ${l}`)
        }
      }
      for (const variable of dashboard.templating.list) {
        const s = labelValuesQuery(variable.query.query)
        assert.isDefined(s)
        check("variable", s!)
      }
      // every concept the issue asks for has a panel
      const titles = panels.map((p) => p.title.toLowerCase()).join("\n")
      for (const concept of ["tool call rate", "error rate", "p95", "cache hit ratio", "pool utilisation", "waiting", "breaker state"]) {
        assert.include(titles, concept)
      }
      assert.isAtLeast(new Set(checked).size, 14)
      // pool and breaker series carry the values the panels plot
      const pool = e.samples.filter((s) => s.name === "keel_pool_connections" && s.labels["server"] === "demo")
      assert.deepStrictEqual(new Set(pool.map((s) => s.labels["state"])), new Set(["total", "active", "idle", "pending", "starting"]))
      assert.isAtLeast(e.samples.filter((s) => s.name === "keel_pool_acquire_duration_seconds_count").reduce((n, s) => n + s.value, 0), 1)
    }).pipe(
      Effect.scoped,
      Effect.provide(PrometheusMetrics.layer({ port: 0, labelCap: { maxToolsPerServer: 2 } })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    ))
})
