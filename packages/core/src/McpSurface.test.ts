/**
 * Resources, prompts and completions through the manager's services (breaker → pool → timeout →
 * metrics), against real servers: the demo server over stdio (2026-07-28 and pinned to 2025-11-25, where
 * subscriptions are `resources/subscribe`) and Streamable HTTP, and server-everything from npm.
 */
import { assert, describe, it } from "@effect/vitest"
import { demoServerEntry, demoStdio } from "@keel/demo-server"
import { Effect, Exit, Fiber, Schedule, Stream } from "effect"
import { createRequire } from "node:module"
import { McpClient } from "./McpClient.ts"
import { McpClientManager } from "./McpClientManager.ts"
import * as McpSurface from "./McpSurface.ts"
import { demoHttpServer, eventually, pidsWithMarker, uniqueMarker } from "./testing/processes.ts"

const require = createRequire(import.meta.url)
const everything = require.resolve("@modelcontextprotocol/server-everything/dist/index.js", { paths: [demoServerEntry] })

const textOf = (r: { content: ReadonlyArray<{ type: string; text?: string }> }) => r.content[0]?.text

type Flags = Parameters<typeof demoStdio>[0]
const configs: ReadonlyArray<readonly [string, (flags: Flags) => Effect.Effect<unknown, never, import("effect").Scope.Scope>]> = [
  ["stdio (2026-07-28)", (flags) => Effect.succeed({ type: "stdio", ...demoStdio(flags) })],
  ["stdio (2025-11-25)", (flags) => Effect.succeed({ type: "stdio", ...demoStdio({ ...flags, protocolVersion: "2025-11-25" }) })],
  ["Streamable HTTP (2026-07-28)", (flags) => Effect.map(demoHttpServer(flags), (s) => ({ type: "http", url: s.url }))]
]

for (const [label, config] of configs) {
  describe(`McpSurface against the demo server over ${label}`, () => {
    it.live("resources, templates, prompts, completions, a subscription update and list changes", () =>
      Effect.gen(function*() {
        const json = { mcpServers: { demo: yield* config({ surface: true }) } }
        yield* Effect.gen(function*() {
          const m = yield* McpClientManager
          const demo = yield* McpSurface.accessOf(m, "demo", 10_000)

          // Resources and templates.
          const resources = yield* McpSurface.listResources(demo)
          assert.includeMembers(resources.map((r) => r.uri), ["demo://readme", "demo://counter"])
          const templates = yield* McpSurface.listResourceTemplates(demo)
          assert.includeMembers(templates.map((t) => t.uriTemplate), ["demo://greeting/{name}", "demo://weather/{city}"])
          const greeting = yield* McpSurface.readResource(demo, "demo://greeting/Ada")
          assert.strictEqual((greeting.contents[0] as { text?: string }).text, "Hello, Ada!")
          const missing = yield* Effect.exit(McpSurface.readResource(demo, "demo://nope"))
          assert.isTrue(Exit.isFailure(missing))

          // Prompts, with argument checks before anything is sent.
          const prompts = yield* McpSurface.listPrompts(demo)
          assert.includeMembers(prompts.map((p) => p.name), ["greet", "summarize"])
          const greet = yield* McpSurface.getPrompt(demo, "greet", { name: "Ada", style: "pirate" })
          assert.strictEqual((greet.messages[0]!.content as { text: string }).text, "Write a pirate greeting for Ada.")
          const noName = yield* Effect.flip(McpSurface.getPrompt(demo, "greet", { style: "formal" }))
          assert.strictEqual(noName._tag, "InvalidPromptArgumentsError")
          assert.deepStrictEqual((noName as McpSurface.InvalidPromptArgumentsError).missing, ["name"])
          const extra = yield* Effect.flip(McpSurface.getPrompt(demo, "greet", { name: "Ada", colour: "red" }))
          assert.strictEqual(extra._tag, "InvalidPromptArgumentsError")
          assert.deepStrictEqual((extra as McpSurface.InvalidPromptArgumentsError).unknown, ["colour"])
          const unknown = yield* Effect.flip(McpSurface.getPrompt(demo, "nope"))
          assert.strictEqual(unknown._tag, "UnknownPromptError")
          assert.include((unknown as McpSurface.UnknownPromptError).available, "greet")

          // Completions for a prompt argument and a resource-template argument.
          const names = yield* McpSurface.complete(demo, { type: "ref/prompt", name: "greet" }, { name: "name", value: "a" })
          assert.deepStrictEqual(names.values, ["Ada", "Alan"])
          const cities = yield* McpSurface.complete(demo, { type: "ref/resource", uri: "demo://weather/{city}" }, { name: "city", value: "Be" })
          assert.deepStrictEqual(cities.values, ["Berlin", "Bern"])

          // A subscription: the update arrives, and the stream ends (unsubscribing) once taken.
          const before = Number((((yield* McpSurface.readResource(demo, "demo://counter")).contents[0]) as { text: string }).text)
          const update = yield* Effect.forkChild(Stream.runHead(McpSurface.subscribeResource(demo, "demo://counter")))
          yield* Effect.sleep(300)
          yield* m.callTool("demo", "bump_counter", {})
          const got = yield* Fiber.join(update).pipe(Effect.timeout("5 seconds"))
          assert.strictEqual(got._tag === "Some" ? got.value.uri : undefined, "demo://counter")
          const after = Number((((yield* McpSurface.readResource(demo, "demo://counter")).contents[0]) as { text: string }).text)
          assert.strictEqual(after, before + 1)
          if (label.includes("2025-11-25")) {
            // The stream ended (runHead): the resource was unsubscribed on the session it was subscribed on.
            const r = yield* m.callTool("demo", "stats")
            const requests = (JSON.parse((r.content[0] as { text: string }).text) as { requests: Record<string, number> }).requests
            assert.strictEqual(requests["resources/subscribe"], 1)
            assert.strictEqual(requests["resources/unsubscribe"], 1)
          }

          // list_changed for resources and prompts reaches the session; the next list shows the change.
          for (const [kind, tool, args] of [
            ["resources", "set_resources", { add: ["notes"] }],
            ["prompts", "set_prompts", { add: ["explain"] }]
          ] as const) {
            const changed = yield* Effect.forkChild(
              m.pool.use("demo", (c) => Stream.runHead(Stream.filter(c.listChanged, (k) => k === kind)))
            )
            yield* Effect.sleep(200)
            yield* m.callTool("demo", tool, args)
            const seen = yield* Fiber.join(changed).pipe(Effect.timeout("5 seconds"))
            assert.strictEqual(seen._tag === "Some" ? seen.value : undefined, kind)
          }
          yield* Effect.sleep(100) // the cache's own watcher of the same notifications
          assert.include((yield* McpSurface.listResources(demo)).map((r) => r.uri), "demo://extra/notes")
          assert.include((yield* McpSurface.listPrompts(demo)).map((p) => p.name), "explain")
          const explained = yield* McpSurface.getPrompt(demo, "explain", { topic: "pools" })
          assert.strictEqual((explained.messages[0]!.content as { text: string }).text, "Tell me about pools.")
        }).pipe(Effect.provide(McpClientManager.layerConfig(json)))
      }).pipe(Effect.scoped), 30_000)
  })
}

describe("McpSurface against server-everything (npm)", () => {
  it.live("resources, templates, prompts, completions and a subscription update", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const ev = yield* McpSurface.accessOf(m, "everything", 10_000)
      const resources = yield* McpSurface.listResources(ev)
      assert.isAbove(resources.length, 0)
      const first = resources[0]!
      const read = yield* McpSurface.readResource(ev, first.uri)
      assert.strictEqual(read.contents[0]?.uri, first.uri)
      const templates = yield* McpSurface.listResourceTemplates(ev)
      assert.isAbove(templates.length, 0)
      const prompts = yield* McpSurface.listPrompts(ev)
      assert.includeMembers(prompts.map((p) => p.name), ["simple-prompt", "args-prompt", "completable-prompt"])
      const simple = yield* McpSurface.getPrompt(ev, "simple-prompt")
      assert.isAbove(simple.messages.length, 0)
      const noCity = yield* Effect.flip(McpSurface.getPrompt(ev, "args-prompt", {}))
      assert.strictEqual(noCity._tag, "InvalidPromptArgumentsError")
      const departments = yield* McpSurface.complete(ev, { type: "ref/prompt", name: "completable-prompt" }, { name: "department", value: "E" })
      assert.deepStrictEqual(departments.values, ["Engineering"])
      const team = yield* McpSurface.complete(
        ev,
        { type: "ref/prompt", name: "completable-prompt" },
        { name: "name", value: "" },
        { department: "Sales" }
      )
      assert.deepStrictEqual(team.values, ["David", "Eve", "Frank"])
      // server-everything sends updates to subscribers every 5 s once `toggle-subscriber-updates` is on.
      const uri = first.uri
      const update = yield* Effect.forkChild(Stream.runHead(McpSurface.subscribeResource(ev, uri)))
      yield* Effect.sleep(300)
      yield* m.callTool("everything", "toggle-subscriber-updates", {})
      const got = yield* Fiber.join(update).pipe(Effect.timeout("12 seconds"))
      assert.strictEqual(got._tag === "Some" ? got.value.uri : undefined, uri)
    }).pipe(Effect.provide(McpClientManager.layerConfig({
      mcpServers: { everything: { command: process.execPath, args: [everything, "stdio"] } }
    }))), 40_000)
})

describe("McpSurface subscriptions across a server crash", () => {
  const uri = "demo://counter"
  for (const pinned of [undefined, "2025-11-25"] as const) {
    const marker = uniqueMarker(`resubscribe-${pinned ?? "modern"}`)
    const layer = McpClientManager.layerConfig({
      mcpServers: { demo: { type: "stdio", ...demoStdio({ name: marker, surface: true, ...(pinned ? { protocolVersion: pinned } : {}) }) } }
    })
    it.live(`${pinned ?? "2026-07-28"}: SIGKILL under a subscription: subscribed again on the new session, one update for the gap, then live updates`, () =>
      Effect.gen(function*() {
        const m = yield* McpClientManager
        const demo = yield* McpSurface.accessOf(m, "demo", 10_000)
        const seen: Array<string> = []
        const following = yield* Effect.forkChild(
          Stream.runForEach(
            McpSurface.subscribeResource(demo, uri, { resubscribe: Schedule.spaced("50 millis") }),
            (u) => Effect.sync(() => seen.push(u.uri))
          )
        )
        yield* Effect.sleep(300)
        yield* m.callTool("demo", "bump_counter", {})
        yield* eventually(() => seen.length === 1, 5_000, "the first update")
        const [pid] = pidsWithMarker(marker)
        assert.isDefined(pid)
        process.kill(pid!, "SIGKILL")
        // Subscribed again on a new child: one update stands for whatever changed in between.
        yield* eventually(() => seen.length === 2, 15_000, "the update for the gap")
        const now = pidsWithMarker(marker)
        assert.strictEqual(now.length, 1)
        assert.notStrictEqual(now[0], pid)
        // The new child's own updates arrive on the new subscription.
        yield* m.callTool("demo", "bump_counter", {})
        yield* eventually(() => seen.length === 3, 5_000, "a live update on the new session")
        yield* Fiber.interrupt(following)
        assert.deepStrictEqual(seen, [uri, uri, uri])
      }).pipe(Effect.provide(layer)), 40_000)
  }

  it.live("resubscribe: false ends the stream with its session, as a bare SDK subscription does", () => {
    const marker = uniqueMarker("no-resubscribe")
    return Effect.gen(function*() {
      const m = yield* McpClientManager
      const demo = yield* McpSurface.accessOf(m, "demo", 10_000)
      yield* McpSurface.readResource(demo, uri) // the session is up
      const following = yield* Effect.forkChild(Stream.runCollect(McpSurface.subscribeResource(demo, uri, { resubscribe: false })))
      yield* Effect.sleep(300)
      process.kill(pidsWithMarker(marker)[0]!, "SIGKILL")
      const updates = yield* Fiber.join(following).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(updates.length, 0)
    }).pipe(Effect.provide(McpClientManager.layerConfig({
      mcpServers: { demo: { type: "stdio", ...demoStdio({ name: marker, surface: true }) } }
    })))
  }, 40_000)
})

describe("McpSurface list caching", () => {
  const requests = (m: McpClientManager["Service"]) =>
    Effect.map(m.callTool("demo", "stats"), (r) => (JSON.parse((r.content[0] as { text: string }).text) as { requests: Record<string, number> }).requests)

  it.live("each list is cached under its own key, dropped by its own list_changed, and never cached stale", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const demo = yield* McpSurface.accessOf(m, "demo", 10_000)
      for (let i = 0; i < 3; i++) {
        yield* McpSurface.listPrompts(demo)
        yield* McpSurface.listResources(demo)
        yield* McpSurface.listResourceTemplates(demo)
        yield* McpSurface.getPrompt(demo, "greet", { name: "Ada" }) // checks arguments against the cached list
      }
      let n = yield* requests(m)
      assert.strictEqual(n["prompts/list"], 1)
      assert.strictEqual(n["resources/list"], 1)
      assert.strictEqual(n["resources/templates/list"], 1)
      assert.strictEqual(n["prompts/get"], 3)

      // A tools/list_changed drops none of them.
      yield* m.callTool("demo", "set_tools", { add: ["weather"] })
      yield* Effect.sleep(200)
      yield* McpSurface.listPrompts(demo)
      yield* McpSurface.listResources(demo)
      n = yield* requests(m)
      assert.strictEqual(n["prompts/list"], 1)
      assert.strictEqual(n["resources/list"], 1)

      // prompts/list_changed drops the prompts only; resources/list_changed the resources and templates.
      yield* m.callTool("demo", "set_prompts", { add: ["explain"] })
      yield* Effect.sleep(200)
      assert.include((yield* McpSurface.listPrompts(demo)).map((p) => p.name), "explain")
      yield* McpSurface.listResources(demo)
      n = yield* requests(m)
      assert.strictEqual(n["prompts/list"], 2)
      assert.strictEqual(n["resources/list"], 1)
      yield* m.callTool("demo", "set_resources", { add: ["notes"] })
      yield* Effect.sleep(200)
      assert.include((yield* McpSurface.listResources(demo)).map((r) => r.uri), "demo://extra/notes")
      yield* McpSurface.listResourceTemplates(demo)
      n = yield* requests(m)
      assert.strictEqual(n["resources/list"], 2)
      assert.strictEqual(n["resources/templates/list"], 2)

      // A change while a fetch is in flight: that fetch's (stale) answer is not cached.
      yield* m.callTool("demo", "set_prompts", { listDelayMs: 600 })
      yield* Effect.sleep(200) // the list_changed of that call
      const inFlight = yield* Effect.forkChild(McpSurface.listPrompts(demo))
      yield* Effect.sleep(200)
      yield* m.callTool("demo", "set_prompts", { add: ["review"], listDelayMs: 0 })
      const stale = yield* Fiber.join(inFlight)
      assert.notInclude(stale.map((p) => p.name), "review") // the snapshot taken before the change
      yield* Effect.sleep(200)
      assert.include((yield* McpSurface.listPrompts(demo)).map((p) => p.name), "review")
    }).pipe(Effect.provide(McpClientManager.layerConfig({ mcpServers: { demo: { type: "stdio", ...demoStdio({ surface: true }) } } }))), 30_000)
})

describe("McpSurface retries", () => {
  it.live("a session that dies under a request: the request is retried on a fresh session", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const demo = yield* McpSurface.accessOf(m, "demo", 10_000)
      const pidOf = Effect.map(m.callTool("demo", "stats"), (r) => (JSON.parse((r.content[0] as { text: string }).text) as { pid: number }).pid)
      const before = yield* pidOf
      yield* m.callTool("demo", "set_prompts", { listDelayMs: 2_000 })
      yield* Effect.sleep(200)
      const listing = yield* Effect.forkChild(McpSurface.listPrompts(demo))
      yield* Effect.sleep(300) // prompts/list is in flight on the one session
      yield* Effect.ignore(m.callTool("demo", "crash", {}))
      const prompts = yield* Fiber.join(listing)
      assert.include(prompts.map((p) => p.name), "greet")
      assert.notStrictEqual(yield* pidOf, before)
    }).pipe(Effect.provide(McpClientManager.layerConfig({
      mcpServers: { demo: { ...demoStdio({ surface: true }), keel: { pool: { maxConnections: 1 } } } }
    }))), 30_000)
})

describe("McpClient list walks", () => {
  it.live("follow every nextCursor, and fail with ListLimitError past the page or item cap", () =>
    Effect.gen(function*() {
      const config = { type: "stdio" as const, ...demoStdio({ pageSize: 1, surface: true }) }
      const c = yield* McpClient.connect("demo", config)
      assert.strictEqual((yield* c.listResources()).resources.length, 2) // two pages of one
      yield* c.callTool("set_prompts", { add: ["a", "b", "c"] })
      assert.strictEqual((yield* c.listPrompts()).prompts.length, 5)
      assert.strictEqual((yield* c.listResourceTemplates()).resourceTemplates.length, 2)
      // Another child (its own state): 2 prompts, 2 resources, 2 templates, one per page.
      const capped = yield* McpClient.connect("demo", config, { settings: { listMaxPages: 2 } })
      assert.strictEqual((yield* capped.listPrompts()).prompts.length, 2) // within the cap
      yield* capped.callTool("set_prompts", { add: ["a"] })
      const pages = yield* Effect.flip(capped.listPrompts())
      assert.strictEqual(pages._tag, "ListLimitError")
      assert.deepInclude(pages, { limit: "pages", max: 2, method: "prompts/list" })
      const few = yield* McpClient.connect("demo", config, { settings: { listMaxItems: 1 } })
      const items = yield* Effect.flip(few.listResources())
      assert.deepInclude(items, { _tag: "ListLimitError", limit: "items", max: 1 })
    }).pipe(Effect.scoped), 30_000)
})
