/**
 * ToolCache against the real demo server (real processes, real `tools/list` round trips). The server
 * counts the `tools/list` walks it served (`stats` tool), so "one fetch per miss" is checked where it
 * matters: on the server.
 */
import { assert, describe, it } from "@effect/vitest"
import { demoStdio } from "@keel/demo-server"
import { Effect, Option, Schedule } from "effect"
import { McpClient, type McpConnection } from "./McpClient.ts"
import type { ServerConfig } from "./ServerConfig.ts"
import { demoHttpServer } from "./testing/processes.ts"
import { ToolCache } from "./ToolCache.ts"

const stdio = (flags: Parameters<typeof demoStdio>[0] = {}): ServerConfig => ({ type: "stdio", ...demoStdio(flags) })

const listRequests = (c: McpConnection) =>
  Effect.map(c.callTool("stats"), (r) => {
    const first = r.content[0]
    return (JSON.parse(first?.type === "text" ? first.text : "{}") as { listToolsRequests: number }).listToolsRequests
  })

const names = (r: { tools: ReadonlyArray<{ name: string }> }) => r.tools.map((t) => t.name)

describe("ToolCache against the demo server", () => {
  it.live("100 concurrent lookups for an uncached server → exactly one tools/list served", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-mcp-concurrent" })
      const c = yield* McpClient.connect("demo", stdio())
      const results = yield* Effect.all(Array.from({ length: 100 }, () => cache.list(c)), { concurrency: "unbounded" })
      assert.strictEqual(yield* listRequests(c), 1)
      assert.isTrue(results.every((r) => r === results[0]))
      assert.include(names(results[0]!), "echo")
      // And hits from then on.
      yield* cache.list(c)
      assert.strictEqual(yield* listRequests(c), 1)
    }).pipe(Effect.scoped))

  it.live("one cache shared by pooled connections to one server: one tools/list for all of them", () =>
    Effect.gen(function*() {
      const server = yield* demoHttpServer()
      const cache = yield* ToolCache.make({ name: "tc-mcp-pool" })
      const config: ServerConfig = { type: "http", url: server.url }
      const pool = yield* Effect.all(Array.from({ length: 4 }, () => McpClient.connect("demo-http", config)), {
        concurrency: "unbounded"
      })
      yield* Effect.all(
        Array.from({ length: 100 }, (_, i) => cache.list(pool[i % pool.length]!)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(yield* listRequests(pool[0]!), 1) // one HTTP server process counts for all sessions
    }).pipe(Effect.scoped))

  it.live("tools/list_changed from the server invalidates the entry whatever TTL remains", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-mcp-list-changed", timeToLive: "1 hour" })
      const c = yield* McpClient.connect("demo", stdio())
      yield* cache.watch(c)
      const before = yield* cache.list(c)
      assert.notInclude(names(before), "weather")
      assert.isTrue(Option.isSome(yield* cache.getOption("demo")))
      // The server changes its tool list and sends notifications/tools/list_changed.
      yield* c.callTool("set_tools", { add: ["weather"] })
      yield* cache.getOption("demo").pipe(
        Effect.flatMap((o) => Option.isNone(o) ? Effect.void : Effect.fail("still cached")),
        Effect.retry(Schedule.spaced(10).pipe(Schedule.upTo({ duration: "5 seconds" })))
      )
      const after = yield* cache.list(c)
      assert.include(names(after), "weather")
      assert.strictEqual(yield* listRequests(c), 2)
    }).pipe(Effect.scoped))

  it.live("the server's ttlMs hint sets the entry's TTL", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-mcp-ttl", timeToLive: "1 hour" })
      const c = yield* McpClient.connect("demo-ttl", stdio({ listTtlMs: 150, listCacheScope: "public" }))
      yield* cache.list(c)
      yield* cache.list(c)
      assert.strictEqual(yield* listRequests(c), 1)
      yield* Effect.sleep(300)
      yield* cache.list(c)
      assert.strictEqual(yield* listRequests(c), 2)
    }).pipe(Effect.scoped))
})
