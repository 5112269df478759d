/**
 * An agent's tools through Keel: `mcp.toolkit()` (`McpToolkit`) turns the manager's servers into an `effect/ai`
 * `Toolkit`, and `LanguageModel.generateText` runs the model's tool calls through the manager (pool,
 * cache, breaker, timeouts, retries, metrics). Offline: the "model" is scripted with
 * `LanguageModel.make` (as Effect's own examples fake a provider); the servers are two demo servers over
 * stdio that share tool names.
 *
 * Shown: names unique across servers and valid for providers, results and failures the model can read
 * (an `isError` result, bad arguments, an open breaker), and a tool added on a server reaching the next
 * turn without rebuilding the toolkit; `keel.tools.deny` keeps tools away from the model (and from calls).
 */
import { NodeRuntime } from "@effect/platform-node"
import { McpClientManager } from "@keel/core"
import * as McpToolkit from "@keel/core/McpToolkit"
import { demoStdio } from "@keel/demo-server"
import { Console, Effect, Stream } from "effect"
import { LanguageModel } from "effect/ai"

type Call = readonly [id: string, name: string, params: Record<string, unknown>]

/** A scripted model: each turn calls the tools the script gives for that turn, and records what it was offered. */
const scriptedModel = (turns: ReadonlyArray<ReadonlyArray<Call>>, offered: Array<ReadonlyArray<string>>) => {
  let turn = 0
  return LanguageModel.make({
    generateText: (options) =>
      Effect.sync(() => {
        offered.push(options.tools.map((t) => t.name))
        const calls = turns[turn++] ?? []
        return [
          ...calls.map(([id, name, params]) => ({ type: "tool-call" as const, id, name, params })),
          { type: "finish" as const, reason: "tool-calls" as const, usage: { inputTokens: { total: 0 }, outputTokens: { total: 0 } } }
        ]
      }),
    streamText: () => Stream.empty
  })
}

const main = Effect.gen(function*() {
  const mcp = yield* McpClientManager
  const offered: Array<ReadonlyArray<string>> = []
  const model = yield* scriptedModel([
    [
      ["1", "math__add", { a: 19, b: 23 }],
      ["2", "text__echo", { message: "hello from the agent" }],
      ["3", "math__echo", { message: "same tool name, other server" }],
      ["4", "text__fail", { kind: "isError", message: "the tool said no" }],
      ["5", "math__add", { a: "nineteen", b: 23 }],
      ["6", "text__set_tools", { add: ["weather"] }]
    ],
    [["7", "text__weather", { message: "sunny, 21 °C" }], ["8", "math__add", { a: 1, b: 1 }]]
  ], offered)
  const toolkit = mcp.toolkit({ servers: ["math", "text"] })
  const turn = (prompt: string) =>
    LanguageModel.generateText({ prompt, toolkit }).pipe(Effect.provideService(LanguageModel.LanguageModel, model))
  const show = (r: { readonly id: string; readonly name: string; readonly isFailure: boolean; readonly result: unknown }) =>
    Console.log(`   ${r.name}: ${r.isFailure ? "failure " : ""}${JSON.stringify(r.result)}`)

  const first = yield* turn("add 19 and 23, then say hello")
  yield* Console.log(`turn 1: the model was offered ${offered[0]!.length} tools, e.g. ${offered[0]!.filter((n) => n.endsWith("__echo") || n.endsWith("__add")).join(", ")}`)
  yield* Effect.forEach(first.toolResults, show, { discard: true })
  yield* Console.log(`   text__crash offered: ${offered[0]!.includes("text__crash")} (keel.tools.deny); calling it anyway: ${
    (yield* Effect.flip(mcp.callTool("text", "crash", {})))._tag
  }`)

  yield* Effect.sleep(300) // the tools/list_changed of set_tools drops the cached list
  yield* (yield* mcp.breaker("math")).isolate // an operator takes "math" out
  const second = yield* turn("what is the weather?")
  yield* Console.log(`turn 2: ${offered[1]!.includes("text__weather") ? "text__weather is offered (no rebuild)" : "text__weather missing"}`)
  yield* Effect.forEach(second.toolResults, show, { discard: true })
  const names = offered.flat()
  const valid = names.every((n) => McpToolkit.VALID_NAME.test(n))
  yield* Console.log(`every name valid for providers: ${valid}; long or ambiguous names are hashed, e.g. ${McpToolkit.toolName("a_", "b")} vs ${McpToolkit.toolName("a", "_b")}`)
}).pipe(Effect.provide(McpClientManager.layerConfig({
  mcpServers: { math: demoStdio({ name: "math" }), text: { ...demoStdio({ name: "text", surface: true }), keel: { tools: { deny: ["crash", "garbage"] } } } }
})))

NodeRuntime.runMain(main)
