/**
 * Quick start: connect to the embedded demo server over stdio, list its tools and call a few, with typed
 * errors. Run: `npm run example -- 00` (works on Node 20 + npm: it runs on the repo's Node 22).
 */
import { NodeRuntime } from "@effect/platform-node"
import { McpClient } from "@keel/core"
import { demoStdio } from "@keel/demo-server"
import { Console, Effect } from "effect"

const program = Effect.gen(function*() {
  const startedAt = Date.now()
  const client = yield* McpClient.connect("demo", { type: "stdio", ...demoStdio() })
  yield* Console.log(`connected to ${client.serverInfo.name} ${client.serverInfo.version} (pid ${client.pid}) in ${Date.now() - startedAt} ms`)

  const { tools } = yield* client.listTools()
  yield* Console.log(`${tools.length} tools: ${tools.map((t) => t.name).join(", ")}`)

  const sum = yield* client.callTool("add", { a: 20, b: 22 })
  yield* Console.log(`add(20, 22) -> ${sum.content[0]?.type === "text" ? sum.content[0].text : "?"}`)

  const t0 = performance.now()
  yield* client.callTool("echo", { message: "hello" })
  yield* Console.log(`echo round trip on a warm connection: ${(performance.now() - t0).toFixed(2)} ms`)

  // Typed errors: match on the tag, nothing to parse.
  yield* client.callTool("slow", { ms: 5_000 }, { timeout: "200 millis" }).pipe(
    Effect.catchTag("McpTimeoutError", (e) => Console.log(`slow(5 s) with a 200 ms timeout -> ${e._tag} (${e.message})`))
  )
  yield* client.callTool("fail", { kind: "isError", message: "disk full" }).pipe(
    Effect.catchTag("McpToolError", (e) => Console.log(`fail -> ${e._tag}: ${e.text}`))
  )
  yield* client.callTool("fail", { kind: "protocol", code: -32001, message: "denied" }).pipe(
    Effect.catchTag("McpProtocolError", (e) => Console.log(`fail -> ${e._tag} code ${e.code}: ${e.message}`))
  )
})

NodeRuntime.runMain(Effect.scoped(program))
