/**
 * Tests that pin `KeyedCache.ts` for mutation testing (`npm run mutation`, see MUTATION.md): concurrent
 * loads of one key across an invalidation (which record a finishing load may remove), `storeAs` returning
 * `undefined`, and a background refresh detached by an invalidation. TestClock and Deferred gates only.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Metric, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as KeyedCache from "./KeyedCache.ts"

const settle = Effect.gen(function*() {
  for (let i = 0; i < 10; i++) yield* Effect.yieldNow
})

describe("KeyedCache (mutation pins)", () => {
  it.effect("a detached load that finishes leaves the newer load of its key in flight (later gets join it)", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, string>({ name: "kcm-newer" })
      const gate1 = yield* Deferred.make<void>()
      const gate2 = yield* Deferred.make<void>()
      let started = 0
      const lookup = (gate: Deferred.Deferred<void>, value: string) =>
        Effect.andThen(Effect.sync(() => started++), Effect.as(Deferred.await(gate), value))
      const old = yield* Effect.forkChild(cache.get("k", lookup(gate1, "old")))
      yield* settle
      yield* cache.invalidate("k") // detaches the first load
      const fresh = yield* Effect.forkChild(cache.get("k", lookup(gate2, "new")))
      yield* settle
      assert.strictEqual(started, 2)
      yield* Deferred.succeed(gate1, undefined)
      assert.strictEqual(yield* Fiber.join(old), "old")
      // The second load is still the key's in-flight load: a third get joins it instead of loading again.
      const joined = yield* Effect.forkChild(cache.get("k", lookup(gate2, "third")))
      yield* settle
      assert.strictEqual(started, 2)
      yield* Deferred.succeed(gate2, undefined)
      assert.strictEqual(yield* Fiber.join(fresh), "new")
      assert.strictEqual(yield* Fiber.join(joined), "new")
      assert.deepStrictEqual(yield* cache.peek("k"), Option.some("new"))
      const s = yield* cache.stats
      assert.deepStrictEqual([s.loadSuccesses, s.misses, s.entries], [2, 3, 1])
    }))

  it.effect("storeAs returning undefined stores nothing; the waiters still get the value", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({
        name: "kcm-store-nowhere",
        storeAs: (value, key) => (value > 0 ? `${key}!` : undefined)
      })
      assert.strictEqual(yield* cache.get("a", Effect.succeed(0)), 0)
      assert.strictEqual(yield* cache.size, 0)
      assert.deepStrictEqual(yield* cache.keys, [])
      assert.strictEqual(yield* cache.get("b", Effect.succeed(1)), 1)
      assert.deepStrictEqual(yield* cache.keys, ["b!"])
      assert.strictEqual((yield* cache.stats).loadSuccesses, 2)
    }))

  it.effect("an invalidation during a background refresh detaches it: the refreshed value is not stored", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, string>({
        name: "kcm-refresh-detach",
        timeToLive: 1_000,
        staleWhileRevalidate: 10_000
      })
      yield* cache.set("k", "v1")
      yield* TestClock.adjust(2_000) // stale
      const gate = yield* Deferred.make<void>()
      let refreshes = 0
      const refresh = Effect.andThen(Effect.sync(() => refreshes++), Effect.as(Deferred.await(gate), "v2"))
      assert.strictEqual(yield* cache.get("k", refresh), "v1") // stale hit, refresh starts
      yield* settle
      assert.strictEqual(refreshes, 1)
      yield* cache.invalidate("k")
      assert.strictEqual(yield* cache.size, 0)
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      // The refresh finished after the invalidation: its value must not come back.
      assert.strictEqual(yield* cache.size, 0)
      assert.deepStrictEqual(yield* cache.peek("k"), Option.none())
      assert.strictEqual((yield* cache.stats).loadSuccesses, 1)
    }))

  it.effect("a refresh in flight is joined by a miss of the same key (one lookup)", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, string>({
        name: "kcm-refresh-join",
        timeToLive: 1_000,
        staleWhileRevalidate: 1_000
      })
      yield* cache.set("k", "v1")
      yield* TestClock.adjust(1_500) // stale
      const gate = yield* Deferred.make<void>()
      let lookups = 0
      const lookup = Effect.andThen(Effect.sync(() => lookups++), Effect.as(Deferred.await(gate), "v2"))
      assert.strictEqual(yield* cache.get("k", lookup), "v1")
      yield* settle
      yield* TestClock.adjust(600) // past the stale window: the entry is gone, the refresh still runs
      const miss = yield* Effect.forkChild(cache.get("k", lookup))
      yield* settle
      assert.strictEqual(lookups, 1) // joined the refresh
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(miss), "v2")
      assert.deepStrictEqual(yield* cache.peek("k"), Option.some("v2"))
    }))
})

/**
 * The module's top level (metric definitions, the config schema) evaluated afresh: the mutation run reuses
 * one worker (`isolate: false`), so a mutant there is only seen by a test that loads the module anew.
 */
const freshModule = (): Promise<typeof KeyedCache> => import(/* @vite-ignore */ `./KeyedCache.ts?fresh=${Date.now()}`)

describe("KeyedCache module definitions (fresh evaluation)", () => {
  it("metric ids, help texts, counter kinds and histogram buckets", async () => {
    const fresh = await freshModule()
    assert.notStrictEqual(fresh.metrics, KeyedCache.metrics) // really a second evaluation
    const m = fresh.metrics
    assert.deepStrictEqual(
      [m.requests.id, m.loads.id, m.evictions.id, m.entries.id, m.hitRatio.id, m.fetchDuration.id],
      ["keel_cache_requests", "keel_cache_loads", "keel_cache_evictions", "keel_cache_entries", "keel_cache_hit_ratio", "keel_cache_fetch_duration_seconds"]
    )
    assert.deepStrictEqual(
      [m.requests.description, m.loads.description, m.evictions.description, m.entries.description, m.hitRatio.description, m.fetchDuration.description],
      [
        "Cache lookups by result (hit, miss, stale)",
        "Cache lookups (fetches) by result (success, failure)",
        "Entries removed from a cache, by reason (capacity, expired, invalidated)",
        "Entries held by a cache",
        "Hits (fresh and stale) over requests since the cache was made",
        "Duration of cache lookups (fetches), successful or not"
      ]
    )
    // A series nobody registered reads the definition itself: incremental counters, the histogram's buckets.
    const unregistered = { cache: "kcm-fresh-never-made" }
    const read = <S>(metric: Metric.Metric<number, S>) =>
      Effect.runSync(Effect.provideService(Metric.value(Metric.withAttributes(metric, unregistered)), Metric.MetricRegistry, new Map()))
    for (const counter of [m.requests, m.loads, m.evictions]) assert.strictEqual(read(counter).incremental, true)
    assert.deepStrictEqual(
      read(m.fetchDuration).buckets.map(([b]) => b),
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    )
  })

  it("the config schema accepts every policy name", async () => {
    const fresh = await freshModule()
    for (const policy of ["lru", "lfu", "fifo", "ttl"]) {
      assert.strictEqual(Schema.decodeUnknownSync(fresh.KeyedCacheConfig)({ policy }).policy, policy)
    }
    assert.throws(() => Schema.decodeUnknownSync(fresh.KeyedCacheConfig)({ policy: "" }))
  })

  it("fromConfig builds a cache", async () => {
    const fresh = await freshModule()
    const config = Schema.decodeUnknownSync(fresh.KeyedCacheConfig)({ capacity: 3, policy: "fifo" })
    const cache = await Effect.runPromise(Effect.scoped(fresh.fromConfig<string, number>("kcm-fresh-config", config)))
    assert.strictEqual(cache.capacity, 3)
    assert.strictEqual(cache.name, "kcm-fresh-config")
  })
})

describe("KeyedCache callback series (mutation pins)", () => {
  it.effect("counter series read back as incremental counters", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kcm-incremental" })
      yield* cache.set("k", 1)
      yield* cache.get("k", Effect.die("hit"))
      const hit = yield* Metric.value(Metric.withAttributes(KeyedCache.metrics.requests, { cache: "kcm-incremental", result: "hit" }))
      assert.deepStrictEqual(hit, { count: 1, incremental: true })
    }))
})

describe("KeyedCache reads, sweep and fetch timing (mutation pins)", () => {
  it.effect("getUnsafe: the fresh value counted as a hit (touching the policy), else undefined and nothing counted", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({
        name: "kcm-get-unsafe",
        capacity: 2,
        timeToLive: 1_000,
        keyAttributes: (key) => ({ group: key })
      })
      yield* cache.set("a", 1)
      yield* cache.set("b", 2)
      assert.strictEqual(cache.getUnsafe("a", 999), 1)
      assert.isUndefined(cache.getUnsafe("a", 1_000)) // expiresAt: not fresh
      assert.isUndefined(cache.getUnsafe("missing", 0))
      const s = yield* cache.stats
      assert.deepStrictEqual([s.hits, s.misses, s.requests], [1, 0, 1])
      const hit = yield* Metric.value(Metric.withAttributes(KeyedCache.metrics.requests, { cache: "kcm-get-unsafe", group: "a", result: "hit" }))
      assert.strictEqual(hit.count, 1)
      yield* cache.set("c", 3) // lru: "a" was read last, so "b" goes
      assert.deepStrictEqual([...(yield* cache.keys)].sort(), ["a", "c"])
    }))

  it.effect("a fresh get hit touches the policy (lru)", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kcm-get-touch", capacity: 2 })
      yield* cache.set("a", 1)
      yield* cache.set("b", 2)
      assert.strictEqual(yield* cache.get("a", Effect.die("hit")), 1)
      yield* cache.set("c", 3)
      assert.deepStrictEqual([...(yield* cache.keys)].sort(), ["a", "c"])
    }))

  it.effect("sweep drops only entries past their stale window", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kcm-sweep", timeToLive: 1_000, staleWhileRevalidate: 1_000 })
      yield* cache.set("old", 1)
      yield* TestClock.adjust(1_500)
      yield* cache.set("new", 2)
      assert.strictEqual(yield* cache.sweep, 0) // "old" is stale but servable, "new" fresh
      yield* TestClock.adjust(500) // "old" at its staleUntil
      assert.strictEqual(yield* cache.sweep, 1)
      assert.deepStrictEqual(yield* cache.keys, ["new"])
    }))

  it.effect("fetch duration is the load's own time, in seconds, whenever it starts", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kcm-fetch-time" })
      yield* TestClock.adjust("10 seconds")
      const fiber = yield* Effect.forkChild(cache.get("k", Effect.as(Effect.sleep(250), 1)))
      yield* settle
      yield* TestClock.adjust(250)
      assert.strictEqual(yield* Fiber.join(fiber), 1)
      const hist = yield* Metric.value(Metric.withAttributes(KeyedCache.metrics.fetchDuration, { cache: "kcm-fetch-time" }))
      assert.strictEqual(hist.count, 1)
      assert.closeTo(hist.sum, 0.25, 1e-9)
    }))
})
