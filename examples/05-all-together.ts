/**
 * All features together: the tutorial's "Complete Example", on Keel.
 *
 * One `McpClientManager` layer gives the pool, the tool cache, a breaker per server, timeouts, retry and
 * metrics; `PrometheusMetrics` serves `/metrics` on 127.0.0.1 and gives the snapshot.
 *
 * Which servers:
 * - `npm run example -- 05 mcp.json`: the servers of an `mcpServers` config file (Claude Desktop
 *   / VS Code format, `${VAR}` expanded, Keel sections allowed).
 * - with `GITHUB_TOKEN` set: the official GitHub server (`@modelcontextprotocol/server-github` through npx)
 *   next to the demo server.
 * - otherwise, offline: the embedded demo server over stdio, and a second one over Streamable HTTP.
 *
 * It ends by itself; `KEEL_KEEP_SERVING=1` keeps `/metrics` up until Ctrl+C (`KEEL_METRICS_PORT`, default
 * a free port).
 */
import { NodeRuntime } from "@effect/platform-node"
import { loadConfigFile, decodeConfig, McpClientManager, McpConfig, type McpConfigShape } from "@keel/core"
import { demoStdio, spawnDemoHttp } from "@keel/demo-server"
import { PrometheusMetrics } from "@keel/prometheus"
import { Console, Effect, Layer } from "effect"

const ms = (from: number) => `${(performance.now() - from).toFixed(2)} ms`

/** 1. Where the servers come from (see the module doc). */
const servers = Effect.gen(function*() {
  const file = process.argv[2]
  if (file !== undefined) return { config: yield* loadConfigFile(file), source: `config file ${file}` }
  const demo = { ...demoStdio(), keel: {
      breaker: { consecutiveFailureThreshold: 3, waitDurationInOpen: 500, waitDurationInOpenBackoff: "fixed", permittedCallsInHalfOpen: 1, successThresholdToClose: 1 }
    }
  }
  if (process.env.GITHUB_TOKEN !== undefined) {
    const config = yield* decodeConfig({
      mcpServers: {
        demo,
        github: { command: "npx", args: ["-y", "@modelcontextprotocol/server-github"], env: { GITHUB_PERSONAL_ACCESS_TOKEN: "${GITHUB_TOKEN}" } }
      }
    })
    return { config, source: "GITHUB_TOKEN: the GitHub server and the demo server" }
  }
  const http = yield* Effect.acquireRelease(Effect.promise(() => spawnDemoHttp({ name: "keel-demo-http" })), (s) => Effect.promise(() => s.stop()))
  const config = yield* decodeConfig({ mcpServers: { demo, "demo-http": { url: http.url } } })
  return { config, source: "offline: the embedded demo server over stdio and over Streamable HTTP" }
})

/** A call that makes sense on any server: `echo` if it has one, else a tool without required arguments. */
const sampleCall = (server: string, tools: ReadonlyArray<{ readonly name: string; readonly inputSchema: object }>) => {
  if (tools.some((t) => t.name === "echo")) return { tool: "echo", args: { message: `hello ${server}` } }
  if (tools.some((t) => t.name === "search_repositories")) return { tool: "search_repositories", args: { query: "modelcontextprotocol" } }
  const free = tools.find((t) => ((t.inputSchema as { required?: ReadonlyArray<string> }).required ?? []).length === 0)
  return free === undefined ? undefined : { tool: free.name, args: {} }
}

const program = (config: McpConfigShape, source: string) =>
  Effect.gen(function*() {
    const mcp = yield* McpClientManager
    const metrics = yield* PrometheusMetrics
    yield* Console.log(`✅ All components initialized (${source})`)
    yield* Console.log(`   metrics: ${metrics.url} (up while the demo runs; \`KEEL_KEEP_SERVING=1 npm run demo\` keeps it up)`)

    for (const server of yield* mcp.servers) {
      // 2. Discover tools (miss, then hit)
      let t = performance.now()
      const tools = yield* mcp.listTools(server)
      const missTime = ms(t)
      t = performance.now()
      yield* mcp.listTools(server)
      // The first list also starts the server (spawn or HTTP connect + initialize): a cold start, not a list.
      yield* Console.log(`\n[${server}] ${tools.length} tools: first list ${missTime} (cold: connect + initialize + tools/list), second ${ms(t)} (cache hit)`)

      // 3. Execute a tool (validated, breaker, pool, timeout, retry, metrics)
      const call = sampleCall(server, tools)
      if (call !== undefined) {
        t = performance.now()
        const result = yield* mcp.callTool(server, call.tool, call.args).pipe(Effect.result)
        const summary = result._tag === "Success"
          ? `${JSON.stringify(result.success.content[0]).slice(0, 80)}`
          : `${result.failure._tag}: ${result.failure.message}`
        yield* Console.log(`[${server}] ${call.tool} → ${summary} (${ms(t)})`)
      }
    }

    yield* Console.log("\n(A first list includes starting the server. A live tools/list on a warm session against a cache hit,")
    yield* Console.log(" each a median of many runs, is what `npm run example -- 02` measures.)")

    const demoServer = (yield* mcp.servers).find((s) => s === "demo")
    if (demoServer !== undefined) {
      // 4. Bad input is a typed error, and nothing is sent
      const bad = yield* Effect.flip(mcp.callTool("demo", "add", { a: "one", b: 2 }))
      yield* Console.log(`\n[demo] add("one", 2) → ${bad._tag}${bad._tag === "InvalidArgumentsError" ? ` at ${bad.path}` : ""}`)
      // 5. A failing tool opens the breaker; then calls fail fast
      yield* Console.log("[demo] breaker settings for this demo (the `demo` config above; README defaults: 5 failures, 10 s doubling, 3 probes/2 successes):")
      yield* Console.log("[demo]   opens after 3 consecutive failures, stays Open 500 ms (fixed), then 1 successful probe closes it")
      for (let i = 0; i < 4; i++) {
        const t = performance.now()
        const e = yield* Effect.flip(mcp.callTool("demo", "flaky", { key: "all-together", failFirst: 3 }))
        yield* Console.log(`[demo] flaky #${i + 1} → ${e._tag} (${ms(t)})`)
      }
      yield* Console.log(`[demo] breaker: ${(yield* mcp.status("demo")).breaker}; waiting for the half-open probe...`)
      yield* Effect.sleep("600 millis")
      const probe = yield* mcp.callTool("demo", "flaky", { key: "all-together", failFirst: 3 })
      yield* Console.log(`[demo] probe → ${JSON.stringify(probe.content[0])}; breaker: ${(yield* mcp.status("demo")).breaker}`)
      // 6. Concurrency through the pool
      const t = performance.now()
      yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => mcp.callTool("demo", "add", { a: i, b: 1 }), { concurrency: 32, discard: true })
      yield* Console.log(`[demo] 200 calls at 32 concurrent in ${ms(t)}`)
    }

    // 7. Status of everything
    const snapshot = yield* metrics.snapshot
    yield* Console.log("\nSystem status:")
    for (const s of yield* mcp.statuses) {
      yield* Console.log(
        `  ${s.server.padEnd(10)} ${s.transport.padEnd(5)} breaker ${s.breaker.padEnd(8)} pool ${s.pool.active}/${s.pool.total} active/open (created ${s.pool.created}), ${s.tools ?? "?"} tools${s.lastError ? `, last error ${s.lastError.tag} ${((Date.now() - s.lastError.at) / 1000).toFixed(1)} s ago` : ""}`
      )
    }
    if (snapshot.pool) yield* Console.log(`  Pool:  ${snapshot.pool.active}/${snapshot.pool.total} sessions active, ${snapshot.pool.acquires} acquires`)
    if (snapshot.cache) yield* Console.log(`  Cache: ${(snapshot.cache.hitRatio * 100).toFixed(1)}% hit rate (${snapshot.cache.hits} hits, ${snapshot.cache.misses} misses)`)
    yield* Console.log(`  Tool calls: ${snapshot.tools.calls} total, ${snapshot.tools.errors} errors`)
    for (const s of snapshot.servers) {
      const p = (x: number | undefined) => (x === undefined ? "-" : `${(x * 1000).toFixed(1)} ms`)
      yield* Console.log(`  ${s.server}: ${s.calls} calls, ${s.errors} errors, p50 ${p(s.p50Seconds)}, p99 ${p(s.p99Seconds)}`)
    }
    const scrape = yield* Effect.promise(() => fetch(metrics.url).then((r) => r.text()))
    yield* Console.log(`  /metrics: ${scrape.split("\n").filter((l) => l.length > 0 && !l.startsWith("#")).length} samples, among them:`)
    const shown = [/^keel_tool_calls_total\{.*"demo"/, /^keel_circuit_breaker_state\{/, /^keel_circuit_breaker_transitions_total\{/, /^keel_cache_requests_total\{/]
    for (const re of shown) for (const line of scrape.split("\n").filter((l) => re.test(l) && !l.endsWith(" 0")).slice(0, 3)) yield* Console.log(`    ${line}`)
    yield* Console.log("\n✅ All advanced features working together!")

    if (process.env.KEEL_KEEP_SERVING === "1") {
      yield* Console.log(`serving ${metrics.url} until Ctrl+C`)
      yield* Effect.never
    }
  }).pipe(Effect.provide(Layer.mergeAll(
    McpClientManager.layerDefault().pipe(Layer.provide(McpConfig.layer(config))),
    PrometheusMetrics.layer({ port: Number(process.env.KEEL_METRICS_PORT ?? 0) })
  )))

NodeRuntime.runMain(Effect.scoped(Effect.flatMap(servers, ({ config, source }) => program(config, source))))
