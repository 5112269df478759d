/**
 * The `effect/ai` toolkit over the manager, driven by `LanguageModel.generateText` with a scripted model
 * (`LanguageModel.make`, as Effect's own examples fake a provider): the model sees the tools of two real
 * servers that share tool names (the demo server and server-everything), calls them, and reads results
 * and failures; a tool added on the server reaches the next turn without rebuilding the toolkit.
 */
import { assert, describe, it } from "@effect/vitest"
import { demoServerEntry, demoStdio } from "@keel/demo-server"
import { Effect, Layer, Stream } from "effect"
import { LanguageModel } from "effect/ai"
import { createRequire } from "node:module"
import { McpClientManager } from "./McpClientManager.ts"
import * as McpToolkit from "./McpToolkit.ts"

const require = createRequire(import.meta.url)
const everything = require.resolve("@modelcontextprotocol/server-everything/dist/index.js", { paths: [demoServerEntry] })

describe("McpToolkit names", () => {
  it("are valid, unique where a plain prefix collides, and stable", () => {
    const names = [
      McpToolkit.toolName("a_b", "c"),
      McpToolkit.toolName("a", "b_c"),
      McpToolkit.toolName("a_", "b"),
      McpToolkit.toolName("a", "_b"),
      McpToolkit.toolName("a__b", "c"),
      McpToolkit.toolName("a", "_b__c"),
      McpToolkit.toolName("my server", "tool.with.dots"),
      McpToolkit.toolName("s".repeat(40), "t".repeat(40)),
      McpToolkit.toolName("s".repeat(40), "t".repeat(39) + "u")
    ]
    for (const n of names) assert.match(n, McpToolkit.VALID_NAME)
    assert.strictEqual(new Set(names).size, names.length)
    assert.strictEqual(McpToolkit.toolName("demo", "echo"), "demo__echo")
    assert.strictEqual(McpToolkit.toolName("s".repeat(40), "t".repeat(40)), McpToolkit.toolName("s".repeat(40), "t".repeat(40)))
    assert.isAtMost(McpToolkit.toolName("s".repeat(40), "t".repeat(40)).length, 64)
  })
})

describe("McpToolkit through LanguageModel", () => {
  it.live("two servers sharing a tool name: unique names, calls through the manager, failures the model can read, changes on the next turn", () =>
    Effect.gen(function*() {
      const mcp = yield* McpClientManager
      const offered: Array<ReadonlyArray<string>> = []
      let turn = 0
      const model = yield* LanguageModel.make({
        generateText: (options) =>
          Effect.sync(() => {
            offered.push(options.tools.map((t) => t.name))
            turn++
            const calls = turn === 1
              ? [
                ["c1", "demo__echo", { message: "hi from demo" }],
                ["c2", "everything__echo", { message: "hi from everything" }],
                ["c3", "demo__fail", { kind: "isError", message: "boom" }],
                ["c4", "demo__add", { a: "not a number", b: 1 }],
                ["c5", "demo__set_tools", { add: ["weather"] }]
              ] as const
              : [["c6", "demo__weather", { message: "sunny" }]] as const
            return [
              ...calls.map(([id, name, params]) => ({ type: "tool-call" as const, id, name, params })),
              { type: "finish" as const, reason: "tool-calls" as const, usage: { inputTokens: { total: 1 }, outputTokens: { total: 1 } } }
            ]
          }),
        streamText: () => Stream.empty
      })
      const toolkit = McpToolkit.toolkit(mcp, { servers: ["demo", "everything"] })

      const first = yield* LanguageModel.generateText({ prompt: "use the tools", toolkit }).pipe(
        Effect.provideService(LanguageModel.LanguageModel, model)
      )
      const names = offered[0]!
      assert.includeMembers([...names], ["demo__echo", "everything__echo", "demo__add", "everything__get-sum"])
      assert.strictEqual(new Set(names).size, names.length)
      for (const n of names) assert.match(n, McpToolkit.VALID_NAME)
      const results = new Map(first.toolResults.map((r) => [r.id, r]))
      assert.strictEqual(results.get("c1")?.result, "hi from demo")
      assert.strictEqual(results.get("c1")?.isFailure, false)
      assert.include(String(results.get("c2")?.result), "hi from everything")
      assert.strictEqual(results.get("c3")?.isFailure, true)
      assert.deepStrictEqual(results.get("c3")?.result, { error: "tool_error", message: "boom" })
      assert.strictEqual(results.get("c4")?.isFailure, true)
      assert.strictEqual((results.get("c4")?.result as McpToolkit.ToolFailure).error, "InvalidArgumentsError")
      assert.isFalse(names.includes("demo__weather"))

      // set_tools sent tools/list_changed; the cache dropped the list, and the next turn sees the new tool.
      yield* Effect.sleep(300)
      const second = yield* LanguageModel.generateText({ prompt: "again", toolkit }).pipe(
        Effect.provideService(LanguageModel.LanguageModel, model)
      )
      assert.include([...offered[1]!], "demo__weather")
      assert.strictEqual(second.toolResults[0]?.result, "sunny")
      assert.strictEqual(second.toolResults[0]?.isFailure, false)

      // Every call went through the manager: the demo server counted them.
      const stats = yield* mcp.callTool("demo", "stats")
      const calls = JSON.parse((stats.content[0] as { text: string }).text).calls as Record<string, number>
      assert.strictEqual(calls.echo, 1)
      assert.strictEqual(calls.weather, 1)
      assert.strictEqual(calls.add, undefined) // invalid arguments never reached the server
    }).pipe(Effect.provide(Layer.fresh(McpClientManager.layerConfig({
      mcpServers: {
        demo: { type: "stdio", ...demoStdio() },
        everything: { command: process.execPath, args: [everything, "stdio"] }
      }
    })))), 30_000)
})
