/**
 * The manager's resource, prompt, completion, subscription and toolkit methods (wired over `McpSurface`
 * and `McpToolkit`), and per-server tool filters (`keel.tools.allow` / `deny`), against the demo server
 * and server-everything.
 */
import { assert, describe, it } from "@effect/vitest"
import { demoServerEntry, demoStdio } from "@keel/demo-server"
import { Effect, Exit, Fiber, Metric, Stream } from "effect"
import { createRequire } from "node:module"
import { McpClientManager } from "./McpClientManager.ts"
import * as McpMetrics from "./McpMetrics.ts"

const require = createRequire(import.meta.url)
const everything = require.resolve("@modelcontextprotocol/server-everything/dist/index.js", { paths: [demoServerEntry] })

describe("McpClientManager: resources, prompts, completions, subscriptions", () => {
  it.live("every method through the manager, on the demo server and server-everything", () =>
    Effect.gen(function*() {
      const mcp = yield* McpClientManager
      assert.includeMembers((yield* mcp.listResources("demo")).map((r) => r.uri), ["demo://readme", "demo://counter"])
      assert.include((yield* mcp.listResourceTemplates("demo")).map((t) => t.uriTemplate), "demo://greeting/{name}")
      const read = yield* mcp.readResource("demo", "demo://greeting/Linus")
      assert.strictEqual((read.contents[0] as { text: string }).text, "Hello, Linus!")
      assert.include((yield* mcp.listPrompts("demo")).map((p) => p.name), "greet")
      const prompt = yield* mcp.getPrompt("demo", "greet", { name: "Ada" })
      assert.strictEqual((prompt.messages[0]!.content as { text: string }).text, "Write a casual greeting for Ada.")
      assert.strictEqual((yield* Effect.flip(mcp.getPrompt("demo", "greet", {})))._tag, "InvalidPromptArgumentsError")
      const names = yield* mcp.complete("demo", { type: "ref/resource", uri: "demo://greeting/{name}" }, { name: "name", value: "G" })
      assert.deepStrictEqual(names.values, ["Grace"])
      const update = yield* Effect.forkChild(Stream.runHead(mcp.subscribeResource("demo", "demo://counter")))
      yield* Effect.sleep(300)
      yield* mcp.callTool("demo", "bump_counter", {})
      const got = yield* Fiber.join(update).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(got._tag === "Some" ? got.value.uri : undefined, "demo://counter")
      assert.strictEqual((yield* Effect.flip(mcp.readResource("nope", "demo://readme")))._tag, "UnknownServerError")
      const noServer = yield* Effect.exit(Stream.runHead(mcp.subscribeResource("nope", "x")))
      assert.isTrue(Exit.isFailure(noServer))

      assert.isAbove((yield* mcp.listResources("everything")).length, 0)
      assert.include((yield* mcp.listPrompts("everything")).map((p) => p.name), "simple-prompt")
      const departments = yield* mcp.complete("everything", { type: "ref/prompt", name: "completable-prompt" }, { name: "department", value: "S" })
      assert.deepStrictEqual(departments.values, ["Sales", "Support"])

      // Metrics: each method is an operation of mcp.client.operation.duration, failures with their error.type.
      yield* Effect.ignore(mcp.readResource("demo", "demo://nope"))
      const series = (yield* Metric.snapshot)
        .filter((s) => s.id === McpMetrics.Names.operationDuration && s.type === "Histogram")
        .map((s) => ({ a: s.attributes ?? {}, count: (s.state as Metric.HistogramState).count }))
      const of = (method: string, errorType?: string) =>
        series.filter((s) => s.a["mcp.server.name"] === "demo" && s.a["mcp.method.name"] === method && s.a["error.type"] === errorType)
          .reduce((n, s) => n + s.count, 0)
      assert.isAtLeast(of("resources/read"), 1)
      assert.strictEqual(of("resources/read", "-32602"), 1) // the SDK answers an unknown resource with -32602
      assert.isAtLeast(of("prompts/get"), 1)
      assert.isAtLeast(of("completion/complete"), 1)
      assert.isAtLeast(of("resources/subscribe"), 1)

      // Disconnecting a server drops its cached lists too.
      yield* mcp.disconnect("everything")
      assert.notInclude(yield* mcp.cache.servers, "everything (prompts)")
    }).pipe(Effect.provide(McpClientManager.layerConfig({
      mcpServers: {
        demo: demoStdio({ surface: true }),
        everything: { command: process.execPath, args: [everything, "stdio"] }
      }
    }))), 30_000)
})

describe("McpClientManager: keel.tools filters", () => {
  it.live("a denied tool is neither listed nor callable, nor offered to the toolkit", () =>
    Effect.gen(function*() {
      const mcp = yield* McpClientManager
      const names = (yield* mcp.listTools("demo")).map((t) => t.name)
      assert.deepStrictEqual([...names].sort(), ["add", "echo", "set_prompts", "set_resources", "stats"])
      const denied = yield* Effect.flip(mcp.callTool("demo", "set_tools", { add: ["x"] }))
      assert.strictEqual(denied._tag, "ToolDeniedError")
      assert.strictEqual((denied as { rule?: string }).rule, "deny")
      const notAllowed = yield* Effect.flip(mcp.callTool("demo", "slow", { ms: 1 }))
      assert.strictEqual((notAllowed as { rule?: string }).rule, "allow")
      const stats = JSON.parse(((yield* mcp.callTool("demo", "stats")).content[0] as { text: string }).text) as { calls: Record<string, number> }
      assert.strictEqual(stats.calls.set_tools, undefined) // nothing was sent
      assert.strictEqual(stats.calls.slow, undefined)
      const offered = Object.keys((yield* mcp.toolkit({ servers: ["demo"] })).tools).sort()
      assert.deepStrictEqual(offered, ["demo__add", "demo__echo", "demo__set_prompts", "demo__set_resources", "demo__stats"])
      // An unknown tool (allowed by "set_*", so not denied) lists only what the caller may call.
      const unknown = yield* Effect.flip(mcp.callTool("demo", "set_nothing", {}))
      assert.strictEqual(unknown._tag, "UnknownToolError")
      const available = [...((unknown as { available?: ReadonlyArray<string> }).available ?? [])].sort()
      assert.deepStrictEqual(available, ["add", "echo", "set_prompts", "set_resources", "stats"])
      assert.notInclude((unknown as { message: string }).message, "set_tools")
      // The unfiltered server is untouched.
      assert.include((yield* mcp.listTools("open")).map((t) => t.name), "slow")
    }).pipe(Effect.provide(McpClientManager.layerConfig({
      mcpServers: {
        demo: { ...demoStdio({ surface: true }), keel: { tools: { allow: ["echo", "add", "set_*", "stats"], deny: ["set_tools"] } } },
        open: demoStdio()
      }
    }))), 30_000)

  it.effect("a bad keel.tools section is a config error naming its path", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Effect.scoped(Effect.provide(Effect.service(McpClientManager), McpClientManager.layerConfig({
        mcpServers: { demo: { ...demoStdio(), keel: { tools: { allow: "echo" } } } }
      }))))
      assert.strictEqual(e._tag, "McpConfigError")
      assert.include((e as { path: string }).path, "mcpServers.demo.keel.tools.allow")
      const typo = yield* Effect.flip(Effect.scoped(Effect.provide(Effect.service(McpClientManager), McpClientManager.layerConfig({
        mcpServers: { demo: { ...demoStdio(), keel: { tools: { alow: ["echo"] } } } }
      }))))
      assert.include((typo as { path: string }).path, "mcpServers.demo.keel.tools")
    }))
})
