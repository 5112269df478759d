/**
 * A small MCP client built on Keel, driven by the official conformance suite
 * (`@modelcontextprotocol/conformance client --command "node conformance-client.ts" --scenario <name>`).
 * The suite passes the scenario server's URL as the last argument and the scenario in
 * `MCP_CONFORMANCE_SCENARIO`.
 *
 * - `initialize`, `tools_call`, `sse-retry`: through `McpClient` directly.
 * - `elicitation-sep1034-client-defaults`: through `McpClientManager` with an elicitation handler that
 *   accepts; the manager declares `elicitation.form.applyDefaults`, so the SDK fills in the defaults.
 */
import { Effect } from "effect"
import { McpClient } from "../src/McpClient.ts"
import { McpClientManager } from "../src/McpClientManager.ts"

const url = process.argv.at(-1)!
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? "initialize"

const direct = Effect.gen(function*() {
  const client = yield* McpClient.connect("conformance", { type: "http", url })
  yield* client.listTools()
  if (scenario === "tools_call") yield* client.callTool("add_numbers", { a: 2, b: 3 })
  if (scenario === "sse-retry") yield* client.callTool("test_reconnection", {}, { timeout: 10_000 })
})

const viaManager = Effect.gen(function*() {
  const mcp = yield* McpClientManager
  yield* mcp.callTool("conformance", "test_client_elicitation_defaults", {})
}).pipe(
  Effect.provide(McpClientManager.layerConfig(
    { mcpServers: { conformance: { url } } },
    { handlers: { elicitation: () => Effect.succeed({ action: "accept", content: {} }) } }
  ))
)

const program = scenario.startsWith("elicitation") ? viaManager : direct

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
