/**
 * A small MCP client built on Keel, driven by the official conformance suite
 * (`@modelcontextprotocol/conformance client --command "node conformance-client.ts" --scenario <name>`).
 * The suite passes the scenario server's URL as the last argument, the scenario in
 * `MCP_CONFORMANCE_SCENARIO` and, for some scenarios, data in `MCP_CONFORMANCE_CONTEXT`.
 *
 * Everything protocol-level (version negotiation, `_meta`, `Mcp-Method`/`Mcp-Name`/`Mcp-Param-*` headers,
 * excluding tools with invalid `x-mcp-header`s, `input_required` round trips with `requestState`, SSE
 * resumption) is Keel's `McpClient` with its defaults. This program only does what each scenario asks a
 * client to do:
 *
 * - every scenario: connect and `tools/list`;
 * - `tools_call`: call `add_numbers`; `sse-retry`: call `test_reconnection`;
 * - `elicitation-*`: through `McpClientManager` with an elicitation handler that accepts (the manager
 *   declares `elicitation.form.applyDefaults`, so the SDK fills in the defaults);
 * - `http-custom-headers`: make the tool calls listed in the context (`toolCalls`);
 * - `json-schema-2020-12-preservation`: send the rich tool's `inputSchema` back as the echo tool's `schema`;
 * - `http-invalid-tool-headers`, `sep-2322-client-request-state`: call every tool `tools/list` returned,
 *   at once, answering elicitations by accepting; a failing tool is reported on stderr, not fatal.
 */
import type { Tool } from "@modelcontextprotocol/client"
import { Effect } from "effect"
import { McpClient } from "../src/McpClient.ts"
import { McpClientManager } from "../src/McpClientManager.ts"

const url = process.argv.at(-1)!
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? "initialize"
const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? "{}") as {
  readonly toolCalls?: ReadonlyArray<{ readonly name: string; readonly arguments?: Record<string, unknown> }>
}

/** Arguments that satisfy a tool's required properties with placeholder values. */
const placeholderArgs = (tool: Tool): Record<string, unknown> => {
  const properties = (tool.inputSchema.properties ?? {}) as Record<string, { type?: unknown }>
  const args: Record<string, unknown> = {}
  for (const key of tool.inputSchema.required ?? []) {
    const type = properties[key]?.type
    args[key] = type === "number" || type === "integer" ? 1 : type === "boolean" ? true : type === "object" ? {} : type === "array" ? [] : "x"
  }
  return args
}

const direct = Effect.gen(function*() {
  const client = yield* McpClient.connect("conformance", { type: "http", url }, {
    sdkOptions: { capabilities: { elicitation: { form: {} } } },
    setup: (sdk) => sdk.setRequestHandler("elicitation/create", async () => ({ action: "accept", content: {} }))
  })
  const { tools } = yield* client.listTools()
  switch (scenario) {
    case "tools_call":
      yield* client.callTool("add_numbers", { a: 2, b: 3 })
      break
    case "sse-retry":
      yield* client.callTool("test_reconnection", {}, { timeout: 10_000 })
      break
    case "http-custom-headers":
      for (const call of context.toolCalls ?? []) yield* client.callToolResult(call.name, call.arguments ?? {})
      break
    case "json-schema-2020-12-preservation": {
      const echo = tools.find((t) => t.inputSchema.required?.includes("schema"))
      const focal = tools.find((t) => t !== echo)
      if (echo === undefined || focal === undefined) return yield* Effect.die(new Error("echo or schema tool missing"))
      yield* client.callTool(echo.name, { schema: focal.inputSchema })
      break
    }
    case "http-invalid-tool-headers":
    case "sep-2322-client-request-state":
      // One tool failing must not stop the others: report it and go on, as a host would.
      yield* Effect.forEach(tools, (t) =>
        client.callToolResult(t.name, placeholderArgs(t)).pipe(
          Effect.catch((e) => Effect.sync(() => console.error(`tool ${t.name} failed: ${e.message}`)))
        ), { concurrency: "unbounded", discard: true })
      break
  }
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
