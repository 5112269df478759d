/**
 * Keel's own `tools/call` path (McpToolCall: `Client.request` with a result schema, output checked against the
 * tool's `outputSchema` by Keel) against a bare SDK `Client.callTool` after its own `listTools` (so the SDK
 * holds the tools' output schemas, as a plain SDK program does): every outcome must be the same, result for
 * result and error for error. Each client has its own process of the raw JSON-RPC fixture
 * (test/fixtures/hostile-server.mjs --structured), which can send what an SDK server would refuse to.
 */
import { assert, describe, it } from "@effect/vitest"
import { type CallToolResult, Client } from "@modelcontextprotocol/client"
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio"
import { Effect, Exit, Layer } from "effect"
import { fileURLToPath } from "node:url"
import { McpClient, type McpConnection } from "./McpClient.ts"
import { McpClientManager } from "./McpClientManager.ts"
import type { ServerConfig } from "./ServerConfig.ts"

const hostileEntry = fileURLToPath(new URL("../test/fixtures/hostile-server.mjs", import.meta.url))
const config: ServerConfig = { type: "stdio", command: process.execPath, args: [hostileEntry, "--structured"] }

type Outcome =
  | { readonly ok: true; readonly result: CallToolResult }
  | { readonly ok: false; readonly code: unknown; readonly message: string; readonly data?: unknown }

/** A bare SDK client on its own fixture process, after `listTools`; closed with the scope. */
const bareClient = Effect.acquireRelease(
  Effect.promise(async () => {
    const client = new Client({ name: "bare", version: "1" })
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [hostileEntry, "--structured"], stderr: "ignore" }))
    await client.listTools()
    return client
  }),
  (client) => Effect.promise(() => client.close())
)

/** The SDK's own `callTool`. */
const viaSdk = (client: Client, name: string, args: Record<string, unknown>) =>
  Effect.promise((): Promise<Outcome> =>
    client.callTool({ name, arguments: args }).then(
      (result) => ({ ok: true, result: result as CallToolResult }),
      (e: { code?: unknown; message: string }) => ({ ok: false, code: e.code, message: e.message })
    )
  )

/** Keel's path, counting the calls that still went to the SDK's `callTool`. */
const viaKeel = (conn: McpConnection, name: string, args: Record<string, unknown>, sdkCalls: { n: number }): Effect.Effect<Outcome> =>
  Effect.gen(function*() {
    const original = conn.sdk.callTool
    conn.sdk.callTool = ((...a: Parameters<typeof original>) => {
      sdkCalls.n++
      return original.apply(conn.sdk, a)
    }) as typeof original
    const exit = yield* Effect.exit(conn.callToolResult(name, args))
    conn.sdk.callTool = original
    if (Exit.isSuccess(exit)) return { ok: true, result: exit.value } as Outcome
    const error = exit.cause.reasons[0] as { error?: { code?: unknown; message: string; data?: unknown } }
    return { ok: false, code: error.error?.code, message: error.error?.message ?? String(exit.cause), data: error.error?.data } as Outcome
  })

describe("McpToolCall: Keel's tools/call path gives the SDK callTool's outcomes", () => {
  it.live("conforming, non-conforming, missing structured content, tool errors, contentless and foreign bodies", () =>
    Effect.scoped(Effect.gen(function*() {
      const conn = yield* McpClient.connect("structured", config)
      const bare = yield* bareClient
      const listed = yield* conn.listTools()
      assert.deepStrictEqual(listed.tools.map((t) => t.name).slice(-3), ["structured", "contentless", "foreign"])
      const cases: Array<[string, Record<string, unknown>]> = [
        ["structured", { mode: "valid" }],
        ["structured", { mode: "invalid" }],
        ["structured", { mode: "missing" }],
        ["structured", { mode: "error" }],
        ["contentless", {}],
        ["foreign", {}],
        ["add", { a: 2, b: 3 }]
      ]
      const sdkCalls = { n: 0 }
      for (const [name, args] of cases) {
        const keel = yield* viaKeel(conn, name, args, sdkCalls)
        const sdk = yield* viaSdk(bare, name, args)
        const label = `${name} ${JSON.stringify(args)}`
        assert.strictEqual(keel.ok, sdk.ok, `${label}: Keel ${JSON.stringify(keel)} vs SDK ${JSON.stringify(sdk)}`)
        if (keel.ok && sdk.ok) assert.deepStrictEqual(keel.result, sdk.result, label)
        if (!keel.ok && !sdk.ok && name === "structured") {
          // The output checks: the same ProtocolError code and message as the SDK's.
          assert.strictEqual(keel.code, sdk.code, label)
          assert.strictEqual(keel.message, sdk.message, label)
        }
        if (!keel.ok && !sdk.ok && name === "foreign") {
          assert.include(keel.message, "content is required when the body carries 'task'", label)
          assert.include(sdk.message, "content is required when the body carries 'task'", label)
        }
      }
      // The expected outcomes themselves, so that both paths being wrong the same way fails too.
      const outcome = (name: string, args: Record<string, unknown>) => viaKeel(conn, name, args, sdkCalls)
      const valid = yield* outcome("structured", { mode: "valid" })
      assert.deepStrictEqual(valid.ok ? valid.result.structuredContent : undefined, { n: 1 })
      const invalid = yield* outcome("structured", { mode: "invalid" })
      assert.isFalse(invalid.ok)
      assert.include(invalid.ok ? "" : invalid.message, "Structured content does not match the tool's output schema")
      const missing = yield* outcome("structured", { mode: "missing" })
      assert.include(missing.ok ? "" : missing.message, "has an output schema but did not return structured content")
      // Both carry the mark that makes them the server's fault (McpError.isCallerRefusal), beside the SDK's code.
      assert.deepStrictEqual(invalid.ok ? undefined : invalid.data, { reason: "outputSchema" })
      assert.deepStrictEqual(missing.ok ? undefined : missing.data, { reason: "outputSchema" })
      const error = yield* outcome("structured", { mode: "error" })
      assert.isTrue(error.ok && error.result.isError === true)
      const contentless = yield* outcome("contentless", {})
      assert.deepStrictEqual(contentless.ok ? contentless.result.content : undefined, [])
      // Every Keel call above had the definition from listTools: none went through the SDK's callTool.
      assert.strictEqual(sdkCalls.n, 0)
    })), { timeout: 30_000 })

  it.live("a result that breaks its outputSchema counts against the server (breaker, lastError)", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const breaker = yield* m.breaker("structured")
      yield* m.callTool("structured", "structured", { mode: "valid" })
      const before = yield* breaker.stats
      assert.isUndefined((yield* m.status("structured")).lastError)
      // The server's answer breaks the tool's declared output: the server's failure (a server's own -32602
      // refusing arguments stays the caller's mistake: McpClientManager.faults.test.ts).
      const broken = yield* Effect.flip(m.callTool("structured", "structured", { mode: "invalid" }))
      assert.strictEqual(broken._tag, "McpProtocolError")
      assert.strictEqual((broken as { code?: unknown }).code, -32602)
      assert.strictEqual((yield* breaker.stats).failedCalls, before.failedCalls + 1)
      assert.strictEqual((yield* m.status("structured")).lastError?.tag, "McpProtocolError")
      assert.match((yield* m.status("structured")).lastError?.message ?? "", /output schema/)
      yield* Effect.flip(m.callTool("structured", "structured", { mode: "missing" }))
      assert.strictEqual((yield* breaker.stats).failedCalls, before.failedCalls + 2)
    }).pipe(Effect.provide(McpClientManager.layerConfig({ mcpServers: { structured: config } }) as Layer.Layer<McpClientManager>)), { timeout: 30_000 })

  it.live("a tool Keel has no definition for goes through the SDK's callTool", () =>
    Effect.scoped(Effect.gen(function*() {
      const conn = yield* McpClient.connect("structured-unlisted", config)
      const sdkCalls = { n: 0 }
      const keel = yield* viaKeel(conn, "add", { a: 1, b: 1 }, sdkCalls)
      assert.isTrue(keel.ok)
      assert.strictEqual(sdkCalls.n, 1)
    })), { timeout: 30_000 })
})
