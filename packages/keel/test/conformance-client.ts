/**
 * A small MCP client built on Keel's McpClient, driven by the official conformance suite
 * (`@modelcontextprotocol/conformance client --command "node conformance-client.ts" --scenario <name>`).
 * The suite passes the scenario server's URL as the last argument and the scenario in
 * `MCP_CONFORMANCE_SCENARIO`.
 */
import { Effect } from "effect"
import { McpClient } from "../src/McpClient.ts"

const url = process.argv.at(-1)!
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? "initialize"

/** Fills omitted fields with the defaults of the requested schema (SEP-1034). */
const withDefaults = (schema: { properties?: Record<string, { default?: unknown }> } | undefined): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [key, prop] of Object.entries(schema?.properties ?? {})) if (prop.default !== undefined) out[key] = prop.default
  return out
}

const program = Effect.gen(function*() {
  const client = yield* McpClient.connect("conformance", { type: "http", url }, {
    sdkOptions: { capabilities: { elicitation: { form: { applyDefaults: true } } } },
    setup: (sdk) =>
      sdk.setRequestHandler("elicitation/create", async (request) => {
        const params = request.params as { requestedSchema?: { properties?: Record<string, { default?: unknown }> } }
        return { action: "accept", content: withDefaults(params.requestedSchema) as Record<string, string | number | boolean> }
      })
  })
  const { tools } = yield* client.listTools()
  switch (scenario) {
    case "tools_call":
      yield* client.callTool("add_numbers", { a: 2, b: 3 })
      break
    case "sse-retry":
      yield* client.callTool("test_reconnection", {}, { timeout: 10_000 })
      break
    case "elicitation-sep1034-client-defaults":
      yield* client.callTool("test_client_elicitation_defaults", {})
      break
    default:
      break
  }
  yield* Effect.log(`scenario ${scenario}: ${tools.length} tools listed`)
})

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
