/**
 * The shared tool-list tier on a real `redis-server` (started here, stopped at the end): two caches, each
 * with its own `SharedRedis` client (two replicas' worth of state in one process), one Redis.
 */
import type { ListToolsResult } from "@modelcontextprotocol/client"
import { Context, Effect, Exit, Layer, Option, PubSub, Scope, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeRedis } from "./ScaleOutConfig.ts"
import { SharedRedis, type SharedRedisShape } from "./SharedRedis.ts"
import * as SharedToolCache from "./SharedToolCache.ts"
import { ToolCache, type ToolCacheShape } from "./ToolCache.ts"
import { type RedisServerHandle, startRedis } from "./testing/redisServer.ts"

let redis: RedisServerHandle
const scope = Scope.makeUnsafe()

interface Replica {
  readonly shared: SharedRedisShape
  readonly cache: ToolCacheShape
}

const replica = async (options: SharedToolCache.SharedTierOptions): Promise<Replica> => {
  const config = Effect.runSync(decodeRedis({ url: redis.url, keyPrefix: "stc:", retryInterval: 100 }, {}))
  const ctx = await Effect.runPromise(Effect.flatMap(Layer.makeMemoMap, (memo) => Layer.buildWithMemoMap(SharedRedis.layer(config), memo, scope)))
  const shared = Context.get(ctx, SharedRedis)
  for (let i = 0; i < 500 && !shared.isAvailable(); i++) await new Promise((r) => setTimeout(r, 10))
  expect(shared.isAvailable()).toBe(true)
  const inner = await Effect.runPromise(Scope.provide(ToolCache.make({ cacheScope: options.cacheScope }), scope))
  const cache = await Effect.runPromise(Scope.provide(SharedToolCache.wrap(inner, shared, options), scope))
  return { shared, cache }
}

const list = (names: Array<string>, cacheScope?: "public" | "private"): ListToolsResult =>
  ({ tools: names.map((name) => ({ name, inputSchema: { type: "object" } })), ...(cacheScope ? { cacheScope } : {}) }) as ListToolsResult

/** A fetch that counts how often it ran (a `tools/list` sent to the server). */
const counting = (result: ListToolsResult) => {
  const counter = { runs: 0 }
  return { counter, fetch: Effect.sync(() => (counter.runs++, result)) }
}

beforeAll(async () => {
  redis = await startRedis()
}, 30_000)

afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await redis?.stop()
})

describe("shared tool-list tier", () => {
  it("a public list fetched by one replica is served to another from Redis (no second tools/list)", async () => {
    const a = await replica({})
    const b = await replica({})
    const fa = counting(list(["x", "y"], "public"))
    const fb = counting(list(["stale"], "public"))
    expect((await Effect.runPromise(a.cache.get("pub", fa.fetch))).tools.map((t) => t.name)).toEqual(["x", "y"])
    expect((await Effect.runPromise(b.cache.get("pub", fb.fetch))).tools.map((t) => t.name)).toEqual(["x", "y"])
    expect([fa.counter.runs, fb.counter.runs]).toEqual([1, 0])
  })

  it("private lists never reach Redis: each replica fetches its own", async () => {
    const a = await replica({})
    const b = await replica({})
    const fa = counting(list(["mine"]))
    const fb = counting(list(["theirs"]))
    await Effect.runPromise(a.cache.get("priv", fa.fetch))
    expect((await Effect.runPromise(b.cache.get("priv", fb.fetch))).tools.map((t) => t.name)).toEqual(["theirs"])
    expect([fa.counter.runs, fb.counter.runs]).toEqual([1, 1])
    expect(await Effect.runPromise(a.shared.send("t", "EXISTS", "stc:tools:priv"))).toBe(0)
    // A credential's slot never uses the tier, even for a public list; a forced private scope neither.
    const fc = counting(list(["cred"], "public"))
    await Effect.runPromise(a.cache.get("cred", fc.fetch, { credential: "alice" }))
    expect(await Effect.runPromise(a.shared.send("t", "EXISTS", "stc:tools:cred"))).toBe(0)
    const forced = await replica({ cacheScope: "private" })
    await Effect.runPromise(forced.cache.get("forced", counting(list(["f"], "public")).fetch))
    expect(await Effect.runPromise(a.shared.send("t", "EXISTS", "stc:tools:forced"))).toBe(0)
  })

  it("list_changed on one replica deletes the shared entry and invalidates the other's local one", async () => {
    const a = await replica({})
    const b = await replica({})
    const changes = await Effect.runPromise(PubSub.unbounded<void>())
    await Effect.runPromise(Scope.provide(a.cache.watch({ name: "chg", toolListChanged: Stream.fromPubSub(changes) }), scope))
    await Effect.runPromise(a.cache.get("chg", Effect.succeed(list(["v1"], "public"))))
    await Effect.runPromise(b.cache.get("chg", Effect.succeed(list(["never"], "public"))))
    expect(Option.map(await Effect.runPromise(b.cache.getOption("chg")), (l) => l.tools[0]!.name)).toEqual(Option.some("v1"))
    await Effect.runPromise(PubSub.publish(changes, undefined))
    const start = performance.now()
    while (Option.isSome(await Effect.runPromise(b.cache.getOption("chg")))) {
      if (performance.now() - start > 2_000) throw new Error("B not invalidated")
      await new Promise((r) => setTimeout(r, 2))
    }
    expect(performance.now() - start).toBeLessThan(100)
    expect(await Effect.runPromise(a.shared.send("t", "EXISTS", "stc:tools:chg"))).toBe(0)
    // B refetches from the server, not from a stale Redis entry.
    const fb = counting(list(["v2"], "public"))
    expect((await Effect.runPromise(b.cache.get("chg", fb.fetch))).tools[0]!.name).toBe("v2")
    expect(fb.counter.runs).toBe(1)
  })

  it("Redis down: the tier is skipped, lists are fetched, nothing waits", async () => {
    const a = await replica({})
    await redis.kill()
    try {
      const fa = counting(list(["z"], "public"))
      const t0 = performance.now()
      expect((await Effect.runPromise(a.cache.get("down", fa.fetch))).tools[0]!.name).toBe("z")
      expect(performance.now() - t0).toBeLessThan(500)
      expect(fa.counter.runs).toBe(1)
    } finally {
      await redis.restart()
    }
  })
})
