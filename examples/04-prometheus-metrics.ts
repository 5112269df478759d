/**
 * Prometheus metrics (tutorial 4, Part 4): serve `/metrics` on 127.0.0.1, make real tool calls against
 * the embedded demo server recorded with `McpMetrics.track`, scrape `/metrics` over HTTP, print the
 * relevant series, then print the typed snapshot (the seed's `GetSnapshot()`).
 *
 * - `KEEL_METRICS_PORT` (default 0 = any free port; the layer's own default is 9464);
 * - `KEEL_KEEP_SERVING=1` keeps `/metrics` up after the run, for `curl` or a local Prometheus (Ctrl+C ends it).
 *
 * Seed metric names → Keel's on `/metrics`:
 *   tool_execution_total            → keel_tool_calls_total{outcome} (or mcp_client_operation_duration_seconds_count)
 *   tool_execution_errors_total     → keel_tool_calls_total{outcome!="success"}
 *   tool_execution_duration_seconds → mcp_client_operation_duration_seconds (histogram)
 *
 * Run: `npm run example -- 04`, or `KEEL_KEEP_SERVING=1 npm run example -- 04`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { McpClient } from "@keel/core/McpClient"
import * as McpMetrics from "@keel/core/McpMetrics"
import { networkTransport, type ServerConfig } from "@keel/core/ServerConfig"
import { demoStdio } from "@keel/demo-server"
import { PrometheusMetrics } from "@keel/prometheus"
import { Config, Console, Effect, Exit } from "effect"

const SERVER = "demo"

const program = (keepServing: boolean) =>
  Effect.gen(function*() {
    const metrics = yield* PrometheusMetrics
    yield* Console.log(`serving ${metrics.url}`)

    const config: ServerConfig = { type: "stdio", ...demoStdio() }
    const transport = networkTransport(config) // "pipe" for stdio, "tcp" for HTTP
    const client = yield* McpClient.connect(SERVER, config)
    yield* McpMetrics.trackSession(SERVER, transport) // keel_server_connected = 1 while this scope is open
    yield* Console.log(`connected to ${client.serverInfo.name} (pid ${client.pid})`)

    const { tools } = yield* client.listTools().pipe(McpMetrics.track({ server: SERVER, transport, method: "tools/list" }))
    yield* McpMetrics.recordToolCount(SERVER, tools.length)

    // Real calls, each recorded with McpMetrics.track; a local tally of the outcomes we saw, to compare.
    const seen = new Map<string, number>()
    const call = (tool: string, args: Record<string, unknown>, timeoutMs?: number) =>
      Effect.gen(function*() {
        const exit = yield* client.callTool(tool, args, timeoutMs === undefined ? undefined : { timeout: timeoutMs }).pipe(
          McpMetrics.track({ server: SERVER, transport, method: "tools/call", tool }),
          Effect.exit
        )
        // The same classification track applies: success, tool_error, the JSON-RPC code, or the error's _tag.
        const outcome = Exit.isSuccess(exit) ? "success" : McpMetrics.errorTypeOf(exit.cause).errorType
        const key = `${tool} ${outcome}`
        seen.set(key, (seen.get(key) ?? 0) + 1)
      })

    yield* Console.log("\nExecuting tools to generate metrics...")
    const t0 = performance.now()
    for (let i = 0; i < 10; i++) yield* call("echo", { message: `hello ${i}` })
    for (let i = 0; i < 5; i++) yield* call("add", { a: i, b: 1 })
    for (let i = 0; i < 4; i++) yield* call("flaky", { key: "example-04", failFirst: 2 }) // 2 JSON-RPC errors, then ok
    for (let i = 0; i < 2; i++) yield* call("fail", { kind: "isError", message: "disk full" }) // isError results
    yield* call("slow", { ms: 2_000 }, 100) // McpTimeoutError after 100 ms
    yield* Console.log(`made ${[...seen.values()].reduce((a, b) => a + b, 0)} tool calls in ${(performance.now() - t0).toFixed(0)} ms:`)
    for (const [key, n] of seen) yield* Console.log(`  ${key.padEnd(28)} x${n}`)

    // Scrape /metrics over real HTTP, as Prometheus would.
    const scraped = yield* Effect.tryPromise(async () => {
      const response = await fetch(metrics.url)
      return { status: response.status, contentType: response.headers.get("content-type"), text: await response.text() }
    })
    const lines = scraped.text.split("\n")
    yield* Console.log(`\nGET ${metrics.url} → ${scraped.status} ${scraped.contentType}, ${lines.length} lines`)
    const show = (prefix: string) =>
      Effect.forEach(lines.filter((l) => l.startsWith(prefix)), (l) => Console.log(`  ${l}`), { discard: true })
    yield* Console.log("tool call counts:")
    yield* show("# TYPE keel_tool_calls_total")
    yield* show("keel_tool_calls_total{")
    yield* Console.log("latency histogram counts (and sums, in seconds):")
    yield* show("# TYPE mcp_client_operation_duration_seconds")
    yield* show("mcp_client_operation_duration_seconds_count{")
    yield* show("mcp_client_operation_duration_seconds_sum{")
    yield* Console.log("server gauges:")
    yield* show("keel_server_connected{")
    yield* show("keel_server_tools{")

    // Cross-check: tools/call total on /metrics vs the calls this run made.
    const scrapedCalls = lines
      .filter((l) => l.startsWith("keel_tool_calls_total{") && l.includes(`mcp_server_name="${SERVER}"`))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0)
    const madeCalls = [...seen.values()].reduce((a, b) => a + b, 0)
    yield* Console.log(`sum of keel_tool_calls_total for ${SERVER}: ${scrapedCalls} (calls made: ${madeCalls})`)

    // The typed snapshot, read from the same metric registry (no HTTP).
    const snapshot = yield* metrics.snapshot
    yield* Console.log("\nMetrics snapshot:")
    yield* Console.log(`  tool calls: ${snapshot.tools.calls} total, ${snapshot.tools.errors} errors`)
    for (const s of snapshot.servers) {
      const p = (v: number | undefined) => (v === undefined ? "n/a" : `${(v * 1000).toFixed(1)} ms`)
      yield* Console.log(
        `  server ${s.server}: connected=${s.connected} transport=${s.transport ?? "?"} tools=${s.tools} ` +
          `calls=${s.calls} errors=${s.errors} p50≈${p(s.p50Seconds)} p99≈${p(s.p99Seconds)}`
      )
      yield* Console.log(`    errors by type: ${JSON.stringify(s.errorsByType)}`)
    }
    if (snapshot.cache === undefined) yield* Console.log("  cache: (no cache in this program)")
    if (snapshot.pool === undefined) yield* Console.log("  pool: (no pool in this program)")

    if (keepServing) {
      yield* Console.log(`\nKEEL_KEEP_SERVING=1: ${metrics.url} stays up; try \`curl ${metrics.url}\`. Ctrl+C to stop.`)
      return yield* Effect.never
    }
  })

const main = Effect.gen(function*() {
  const port = yield* Config.Int("KEEL_METRICS_PORT").pipe(Config.withDefault(0))
  const keepServing = yield* Config.Boolean("KEEL_KEEP_SERVING").pipe(Config.withDefault(false))
  yield* Effect.scoped(program(keepServing)).pipe(
    Effect.provide(PrometheusMetrics.layer({ port, serviceName: "keel-example" })),
    Effect.tapErrorTag("PrometheusMetricsError", (e) =>
      Console.error(`/metrics could not start (${e.reason}): ${e.message}; set KEEL_METRICS_PORT to a free port or 0`))
  )
})

// A failure (the port taken, the demo server not starting, an unexpected McpError) exits with code 1.
NodeRuntime.runMain(main)
