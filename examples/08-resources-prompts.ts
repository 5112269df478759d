/**
 * Beyond tools: resources, resource templates, a subscription, prompts and completions through
 * `McpClientManager`, against the embedded demo server (offline). Every request goes through the same
 * breaker → pool → timeout → metrics path as `callTool`, and the lists are cached like the tool list
 * (each under its own key, dropped by its own `list_changed`).
 */
import { NodeRuntime } from "@effect/platform-node"
import { McpClientManager } from "@keel/core"
import { demoStdio } from "@keel/demo-server"
import { Console, Effect, Fiber, Stream } from "effect"

const textOf = (c: { readonly contents: ReadonlyArray<unknown> }) => (c.contents[0] as { text?: string }).text ?? ""
const requests = Effect.gen(function*() {
  const mcp = yield* McpClientManager
  const r = yield* mcp.callTool("demo", "stats")
  return (JSON.parse((r.content[0] as { text: string }).text) as { requests: Record<string, number> }).requests
})

const main = Effect.gen(function*() {
  const mcp = yield* McpClientManager

  // Resources and templates.
  const resources = yield* mcp.listResources("demo")
  yield* Console.log(`resources: ${resources.map((r) => r.uri).join(", ")}`)
  const templates = yield* mcp.listResourceTemplates("demo")
  yield* Console.log(`templates: ${templates.map((t) => t.uriTemplate).join(", ")}`)
  yield* Console.log(`read demo://readme: ${JSON.stringify(textOf(yield* mcp.readResource("demo", "demo://readme")))}`)
  yield* Console.log(`read demo://greeting/Ada: ${textOf(yield* mcp.readResource("demo", "demo://greeting/Ada"))}`)

  // Completions: a template argument and a prompt argument.
  const cities = yield* mcp.complete("demo", { type: "ref/resource", uri: "demo://weather/{city}" }, { name: "city", value: "L" })
  yield* Console.log(`complete weather {city} "L": ${cities.values.join(", ")}`)
  yield* Console.log(`read demo://weather/${cities.values[0]}: ${textOf(yield* mcp.readResource("demo", `demo://weather/${cities.values[0]}`))}`)

  // Prompts, arguments checked against the declared ones before anything is sent.
  const prompts = yield* mcp.listPrompts("demo")
  yield* Console.log(`prompts: ${prompts.map((p) => `${p.name}(${(p.arguments ?? []).map((a) => a.name + (a.required ? "" : "?")).join(", ")})`).join(", ")}`)
  const styles = yield* mcp.complete("demo", { type: "ref/prompt", name: "greet" }, { name: "style", value: "" })
  yield* Console.log(`complete greet(style): ${styles.values.join(", ")}`)
  const greet = yield* mcp.getPrompt("demo", "greet", { name: "Grace", style: "pirate" })
  yield* Console.log(`greet(Grace, pirate): "${(greet.messages[0]?.content as { text: string }).text}"`)
  const bad = yield* Effect.flip(mcp.getPrompt("demo", "greet", { style: "formal", tone: "dry" }))
  yield* Console.log(`greet(style, tone): ${bad._tag}: ${bad.message}`)

  // A subscription: three updates of demo://counter while the counter is bumped three times.
  const updates = yield* Effect.forkChild(
    mcp.subscribeResource("demo", "demo://counter").pipe(Stream.take(3), Stream.runCollect)
  )
  yield* Effect.sleep(200)
  for (let i = 0; i < 3; i++) yield* mcp.callTool("demo", "bump_counter", {})
  const got = yield* Fiber.join(updates).pipe(Effect.timeout("5 seconds"))
  yield* Console.log(`subscription: ${got.length} updates of ${got[0]?.uri}; counter now ${textOf(yield* mcp.readResource("demo", "demo://counter"))} (unsubscribed when the stream ended)`)

  // Cached lists, dropped by their own list_changed.
  for (let i = 0; i < 5; i++) yield* mcp.listPrompts("demo")
  yield* Console.log(`prompts/list asked 6 times, sent ${(yield* requests)["prompts/list"]} time(s) (cached)`)
  yield* mcp.callTool("demo", "set_prompts", { add: ["explain"] })
  yield* Effect.sleep(200)
  const after = yield* mcp.listPrompts("demo")
  yield* Console.log(`after prompts/list_changed: ${after.map((p) => p.name).join(", ")} (prompts/list sent ${(yield* requests)["prompts/list"]} times)`)
}).pipe(Effect.provide(McpClientManager.layerConfig({ mcpServers: { demo: demoStdio({ surface: true }) } })))

NodeRuntime.runMain(main)
