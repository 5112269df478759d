import { describe, expect, it } from "@effect/vitest"
import type { ListToolsResult } from "@modelcontextprotocol/client"
import { Deferred, Duration, Effect, Exit, Fiber, Metric, Option, PubSub, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as KeyedCache from "./KeyedCache.ts"
import { ToolCache, ToolCacheConfig } from "./ToolCache.ts"

const tools = (names: ReadonlyArray<string>, hints: { ttlMs?: number; cacheScope?: "public" | "private" } = {}) =>
  ({
    tools: names.map((name) => ({ name, inputSchema: { type: "object" as const, properties: {} } })),
    ...hints
  }) as ListToolsResult

/** A fake server: counts `tools/list` calls. */
const fakeServer = (result: () => ListToolsResult) => {
  const state = { calls: 0 }
  const fetch = Effect.sync(() => {
    state.calls++
    return result()
  })
  return { state, fetch }
}

const names = (r: ListToolsResult) => r.tools.map((t) => t.name)

describe("ToolCache", () => {
  it.effect("config: seed defaults (TTL 5 min, 100 entries, lru), hints honoured by default", () =>
    Effect.sync(() => {
      const c = Schema.decodeUnknownSync(ToolCacheConfig)({})
      expect(c.capacity).toBe(100)
      expect(c.policy).toBe("lru")
      expect(Duration.toMillis(c.timeToLive)).toBe(300_000)
      expect(c.overrideServerTtl).toBe(false)
      expect(c.cacheScope).toBeUndefined()
      expect(Duration.toMillis(c.maxTimeToLive)).toBe(86_400_000)
    }))

  it.effect("seed API: getOption (Get) / set (Set) / stats (GetMetrics) through the layer", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache
      expect(yield* cache.getOption("github")).toEqual(Option.none())
      yield* cache.set("github", tools(["search", "create_issue"]))
      const hit = yield* cache.getOption("github")
      expect(Option.map(hit, names)).toEqual(Option.some(["search", "create_issue"]))
      const s = yield* cache.stats
      expect(s).toMatchObject({ entries: 1, hits: 1, misses: 1, hitRate: 0.5, missRate: 0.5 })
      expect(yield* cache.servers).toEqual(["github"])
    }).pipe(Effect.provide(ToolCache.layer({ name: "tc-seed" }))))

  it.effect("100 concurrent gets for an uncached server → one fetch", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-concurrent" })
      const gate = yield* Deferred.make<void>()
      let calls = 0
      const fetch = Effect.andThen(Effect.sync(() => calls++), Effect.as(Deferred.await(gate), tools(["a"])))
      const fiber = yield* Effect.forkChild(
        Effect.all(Array.from({ length: 100 }, () => cache.get("s", fetch)), { concurrency: "unbounded" })
      )
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Fiber.join(fiber)
      expect(calls).toBe(1)
      expect(results.every((r) => r === results[0])).toBe(true)
    }))

  it.effect("failures are not cached", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-failures" })
      let up = false
      let calls = 0
      const fetch = Effect.suspend(() => {
        calls++
        return up ? Effect.succeed(tools(["a"])) : Effect.fail("server down" as const)
      })
      expect(yield* Effect.exit(cache.get("s", fetch))).toEqual(Exit.fail("server down"))
      up = true
      expect(names(yield* cache.get("s", fetch))).toEqual(["a"])
      expect(names(yield* cache.get("s", fetch))).toEqual(["a"])
      expect(calls).toBe(2)
    }))

  it.effect("server hint ttlMs sets the TTL; absent → config TTL; overrideServerTtl → config wins; clamped", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-ttl", timeToLive: "5 minutes", maxTimeToLive: "1 hour" })
      const hinted = fakeServer(() => tools(["h"], { ttlMs: 10_000 }))
      const plain = fakeServer(() => tools(["p"]))
      const greedy = fakeServer(() => tools(["g"], { ttlMs: 7 * 86_400_000 }))
      yield* cache.get("hinted", hinted.fetch)
      yield* cache.get("plain", plain.fetch)
      yield* cache.get("greedy", greedy.fetch)
      yield* TestClock.adjust("10 seconds")
      yield* cache.get("hinted", hinted.fetch)
      yield* cache.get("plain", plain.fetch)
      expect([hinted.state.calls, plain.state.calls]).toEqual([2, 1])
      yield* TestClock.adjust("5 minutes")
      yield* cache.get("plain", plain.fetch)
      yield* cache.get("greedy", greedy.fetch)
      expect([plain.state.calls, greedy.state.calls]).toEqual([2, 1])
      yield* TestClock.adjust("1 hour") // a 7-day hint is clamped to maxTimeToLive
      yield* cache.get("greedy", greedy.fetch)
      expect(greedy.state.calls).toBe(2)

      const overriding = yield* ToolCache.make({ name: "tc-ttl-override", timeToLive: "1 minute", overrideServerTtl: true })
      const s = fakeServer(() => tools(["h"], { ttlMs: 1_000 }))
      yield* overriding.get("s", s.fetch)
      yield* TestClock.adjust("30 seconds")
      yield* overriding.get("s", s.fetch)
      expect(s.state.calls).toBe(1)
    }))

  it.effect("ttlMs: 0 with zeroTtl \"respect\": served to the callers that asked, never kept", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-ttl-zero", zeroTtl: "respect" })
      const s = fakeServer(() => tools(["a"], { ttlMs: 0 }))
      yield* cache.get("s", s.fetch)
      yield* cache.get("s", s.fetch)
      expect(s.state.calls).toBe(2)
      expect((yield* cache.stats).entries).toBe(0)
    }))

  it.effect("ttlMs: 0 by default (the SDK v2 server's unset hint): kept for timeToLive, dropped by invalidate", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-ttl-zero-default", timeToLive: "1 minute" })
      const s = fakeServer(() => tools(["a"], { ttlMs: 0 }))
      yield* cache.get("s", s.fetch)
      yield* cache.get("s", s.fetch)
      expect(s.state.calls).toBe(1)
      yield* TestClock.adjust("59 seconds")
      yield* cache.get("s", s.fetch)
      expect(s.state.calls).toBe(1)
      yield* TestClock.adjust("2 seconds")
      yield* cache.get("s", s.fetch)
      expect(s.state.calls).toBe(2) // the config's TTL bounds it
      yield* cache.invalidate("s") // list_changed
      yield* cache.get("s", s.fetch)
      expect(s.state.calls).toBe(3)
    }))

  it.effect("cacheScope private: never shared across credentials; public: shared, one fetch", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-scope" })
      const priv = fakeServer(() => tools(["mine"], { cacheScope: "private", ttlMs: 60_000 }))
      yield* cache.get("p", priv.fetch, { credential: "alice" })
      yield* cache.get("p", priv.fetch, { credential: "alice" })
      expect(priv.state.calls).toBe(1)
      yield* cache.get("p", priv.fetch, { credential: "bob" })
      expect(priv.state.calls).toBe(2) // bob never sees alice's private list
      expect(yield* cache.getOption("p", { credential: "carol" })).toEqual(Option.none())

      const pub = fakeServer(() => tools(["shared"], { cacheScope: "public", ttlMs: 60_000 }))
      yield* cache.get("q", pub.fetch, { credential: "alice" })
      yield* cache.get("q", pub.fetch, { credential: "bob" })
      yield* cache.get("q", pub.fetch)
      expect(pub.state.calls).toBe(1)
      // Stored once, in the shared slot.
      expect((yield* cache.cache.keys).filter((k) => k === "q" || k.includes("\"q\""))).toEqual(["q"])
    }))

  it.effect("no hint is private (as in the SDK); a credential-less caller's entry is not served to a credential", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-scope-default" })
      const s = fakeServer(() => tools(["x"]))
      yield* cache.get("s", s.fetch) // single-tenant slot
      yield* cache.get("s", s.fetch, { credential: "alice" })
      expect(s.state.calls).toBe(2)
    }))

  it.effect("config cacheScope overrides the server: forced private splits a public result per credential", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-scope-forced", cacheScope: "private" })
      const s = fakeServer(() => tools(["x"], { cacheScope: "public" }))
      yield* cache.get("s", s.fetch, { credential: "alice" })
      yield* cache.get("s", s.fetch, { credential: "bob" })
      expect(s.state.calls).toBe(2)
    }))

  it.effect("invalidate(server) drops every credential's entry of that server, and only that server", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-invalidate" })
      const s = fakeServer(() => tools(["x"], { cacheScope: "private" }))
      const other = fakeServer(() => tools(["y"]))
      yield* cache.get("s", s.fetch, { credential: "alice" })
      yield* cache.get("s", s.fetch, { credential: "bob" })
      yield* cache.get("s", s.fetch)
      yield* cache.get("other", other.fetch)
      yield* cache.invalidate("s")
      expect(yield* cache.servers).toEqual(["other"])
      expect((yield* cache.stats).evictions.invalidated).toBe(3)
    }))

  it.effect("list_changed invalidates whatever TTL remains, and beats a fetch in flight", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-list-changed", timeToLive: "1 hour" })
      const changes = yield* PubSub.unbounded<void>()
      yield* cache.watch({ name: "s", toolListChanged: Stream.fromPubSub(changes) })
      yield* Effect.yieldNow
      let version = 1
      let calls = 0
      const fetch = Effect.suspend(() => {
        calls++
        const v = version
        return Effect.as(Effect.sleep(100), tools([`v${v}`]))
      })
      const first = yield* Effect.forkChild(cache.get("s", fetch))
      yield* TestClock.adjust(100)
      expect(names(yield* Fiber.join(first))).toEqual(["v1"])
      // The server changes its tools: 59 minutes of TTL left, dropped anyway.
      version = 2
      yield* PubSub.publish(changes, undefined)
      yield* Effect.yieldNow
      expect(yield* cache.getOption("s")).toEqual(Option.none())
      // A fetch in flight when list_changed lands is not stored.
      const inFlight = yield* Effect.forkChild(cache.get("s", fetch))
      while (calls < 2) yield* Effect.yieldNow // the request has reached the server
      version = 3
      yield* PubSub.publish(changes, undefined)
      yield* Effect.yieldNow
      yield* TestClock.adjust(100)
      expect(names(yield* Fiber.join(inFlight))).toEqual(["v2"])
      expect(yield* cache.getOption("s")).toEqual(Option.none())
      const fresh = yield* Effect.forkChild(cache.get("s", fetch))
      yield* TestClock.adjust(100)
      expect(names(yield* Fiber.join(fresh))).toEqual(["v3"])
      expect(calls).toBe(3)
    }))

  it.effect("stale-while-revalidate: the last good list is served while the server is down", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-swr", timeToLive: "1 minute", staleWhileRevalidate: "1 hour" })
      yield* cache.get("s", Effect.succeed(tools(["a"])))
      yield* TestClock.adjust("2 minutes")
      const down = Effect.fail("down" as const)
      expect(names(yield* cache.get("s", down))).toEqual(["a"])
      yield* Effect.yieldNow
      expect(names(yield* cache.get("s", down))).toEqual(["a"])
      expect((yield* cache.stats).loadFailures).toBeGreaterThanOrEqual(1)
    }))

  it.effect("seed defect: shallow copies leak mutation — cached lists are deep-frozen", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-frozen" })
      const got = yield* cache.get("s", Effect.sync(() => tools(["a"])))
      expect(() => {
        ;(got.tools as Array<unknown>).push({ name: "evil" })
      }).toThrow(TypeError)
      expect(() => {
        ;(got.tools[0]!.inputSchema as { type: string }).type = "evil"
      }).toThrow(TypeError)
      const again = yield* cache.get("s", Effect.die("not called"))
      expect(names(again)).toEqual(["a"])
      expect(again.tools[0]!.inputSchema.type).toBe("object")
    }))

  it.effect("metrics carry cache and server attributes", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-metrics" })
      const s = fakeServer(() => tools(["a"]))
      yield* cache.get("alpha", s.fetch)
      yield* cache.get("alpha", s.fetch)
      yield* cache.get("alpha", s.fetch)
      const hits = yield* Metric.value(
        Metric.withAttributes(KeyedCache.metrics.requests, { cache: "tc-metrics", server: "alpha", result: "hit" })
      )
      const misses = yield* Metric.value(
        Metric.withAttributes(KeyedCache.metrics.requests, { cache: "tc-metrics", server: "alpha", result: "miss" })
      )
      expect([hits.count, misses.count]).toEqual([2, 1])
      const fetches = yield* Metric.value(
        Metric.withAttributes(KeyedCache.metrics.fetchDuration, { cache: "tc-metrics", server: "alpha" })
      )
      expect(fetches.count).toBe(1)
    }))

  it.effect("a server name beginning with NUL cannot collide with a credential slot", () =>
    Effect.gen(function*() {
      const cache = yield* ToolCache.make({ name: "tc-nul" })
      const evil = "\u0000[\"s\",\"alice\"]"
      yield* cache.set(evil, tools(["evil"]))
      yield* cache.set("s", tools(["mine"], { cacheScope: "private" }), { credential: "alice" })
      expect(Option.map(yield* cache.getOption("s", { credential: "alice" }), names)).toEqual(Option.some(["mine"]))
      expect(Option.map(yield* cache.getOption(evil), names)).toEqual(Option.some(["evil"]))
      yield* cache.invalidate(evil)
      expect(yield* cache.servers).toEqual(["s"])
    }))
})
