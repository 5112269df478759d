// The consumer program of scripts/consumer.test.ts: plain JavaScript in a scratch project outside the
// workspace, where @keel/core and @keel/prometheus were installed with npm from their tarballs and
// @modelcontextprotocol/server-memory from the npm registry. It builds a McpClientManager from an
// `mcpServers` config, lists the memory server's tools, calls two, scrapes /metrics, and prints one JSON
// line with what it saw. Any failure exits non-zero.
import { McpClientManager } from "@keel/core"
import { PrometheusMetrics } from "@keel/prometheus"
import { Effect, Layer } from "effect"
import { fileURLToPath } from "node:url"

const memoryServer = fileURLToPath(new URL("node_modules/@modelcontextprotocol/server-memory/dist/index.js", import.meta.url))

// What a user writes in mcp.json (here as a value): `${VAR}` is expanded from the environment.
const config = {
  mcpServers: {
    memory: {
      command: process.execPath,
      args: [memoryServer],
      env: { MEMORY_FILE_PATH: "${KEEL_CONSUMER_MEMORY_FILE}" }
    }
  }
}

const text = (result) => result.content.filter((c) => c.type === "text").map((c) => c.text).join("")

const program = Effect.gen(function*() {
  const mcp = yield* McpClientManager
  const metrics = yield* PrometheusMetrics
  const tools = yield* mcp.listTools("memory")
  const names = tools.map((t) => t.name)
  if (!names.includes("create_entities") || !names.includes("read_graph")) {
    return yield* Effect.die(new Error(`unexpected tools: ${names.join(", ")}`))
  }
  yield* mcp.callTool("memory", "create_entities", {
    entities: [{ name: "Keel", entityType: "library", observations: ["installed from a tarball with npm"] }]
  })
  const graph = JSON.parse(text(yield* mcp.callTool("memory", "read_graph", {})))
  if (!graph.entities.some((e) => e.name === "Keel")) return yield* Effect.die(new Error(`Keel not in ${JSON.stringify(graph)}`))

  const response = yield* Effect.promise(() => fetch(metrics.url))
  const exposition = yield* Effect.promise(() => response.text())
  const series = exposition.split("\n").filter((l) => l.startsWith("keel_tool_calls_total{") && l.includes('mcp_server_name="memory"'))
  if (response.status !== 200 || series.length !== 2) {
    return yield* Effect.die(new Error(`/metrics: ${response.status}, tool-call series ${JSON.stringify(series)}`))
  }
  // A test file must not be importable from the published package.
  const testImport = yield* Effect.promise(() => import("@keel/core/CircuitBreaker.model.test").then(() => "importable", (e) => e.code))
  console.log(JSON.stringify({ node: process.version, tools: names, entities: graph.entities.length, metricsUrl: metrics.url, series, testImport }))
})

await Effect.runPromise(program.pipe(
  Effect.provide(Layer.mergeAll(McpClientManager.layerConfig(config), PrometheusMetrics.layer({ port: 0 })))
))
