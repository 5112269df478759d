import { assert, describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Exit, Fiber, Metric, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import * as EvictionPolicy from "./EvictionPolicy.ts"
import * as KeyedCache from "./KeyedCache.ts"

const counters = {
  keel_cache_requests: KeyedCache.metrics.requests,
  keel_cache_loads: KeyedCache.metrics.loads,
  keel_cache_evictions: KeyedCache.metrics.evictions
}
const gauges = { keel_cache_entries: KeyedCache.metrics.entries, keel_cache_hit_ratio: KeyedCache.metrics.hitRatio }
const counterValue = (name: keyof typeof counters, attributes: Record<string, string>) =>
  Effect.map(Metric.value(Metric.withAttributes(counters[name], attributes)), (s) => s.count)
const gaugeValue = (name: keyof typeof gauges, attributes: Record<string, string>) =>
  Effect.map(Metric.value(Metric.withAttributes(gauges[name], attributes)), (s) => s.value)

describe("KeyedCache", () => {
  it.effect("config schema: seed defaults (TTL 5 min, 100 entries, lru)", () =>
    Effect.sync(() => {
      const c = KeyedCache.defaultConfig
      expect(c.capacity).toBe(100)
      expect(c.policy).toBe("lru")
      expect(Duration.toMillis(c.timeToLive)).toBe(300_000)
      expect(Duration.toMillis(c.staleWhileRevalidate)).toBe(0)
      const custom = Schema.decodeUnknownSync(KeyedCache.KeyedCacheConfig)({ policy: "ttl", timeToLive: 600_000 })
      expect(custom.policy).toBe("ttl")
      expect(Duration.toMillis(custom.timeToLive)).toBe(600_000)
      expect(() => Schema.decodeUnknownSync(KeyedCache.KeyedCacheConfig)({ capacity: -1 })).toThrow()
      expect(() => Schema.decodeUnknownSync(KeyedCache.KeyedCacheConfig)({ policy: "random" })).toThrow()
    }))

  it.effect("get: a miss runs the lookup, a hit does not; stats and metrics agree", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kc-basic", capacity: 10 })
      let calls = 0
      const lookup = Effect.sync(() => ++calls)
      expect(yield* cache.get("a", lookup)).toBe(1)
      expect(yield* cache.get("a", lookup)).toBe(1)
      expect(yield* cache.get("a", lookup)).toBe(1)
      expect(calls).toBe(1)
      const s = yield* cache.stats
      expect(s).toMatchObject({ hits: 2, misses: 1, requests: 3, loadSuccesses: 1, loadFailures: 0, entries: 1 })
      expect(s.hitRate).toBeCloseTo(2 / 3)
      expect(s.missRate).toBeCloseTo(1 / 3)
      expect(yield* counterValue("keel_cache_requests", { cache: "kc-basic", result: "hit" })).toBe(2)
      expect(yield* counterValue("keel_cache_requests", { cache: "kc-basic", result: "miss" })).toBe(1)
      expect(yield* counterValue("keel_cache_loads", { cache: "kc-basic", result: "success" })).toBe(1)
      expect(yield* gaugeValue("keel_cache_entries", { cache: "kc-basic" })).toBe(1)
      expect(yield* gaugeValue("keel_cache_hit_ratio", { cache: "kc-basic" })).toBeCloseTo(2 / 3)
    }))

  it.effect("100 concurrent misses share one lookup", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, string>({ name: "kc-concurrent", capacity: 10 })
      const gate = yield* Deferred.make<void>()
      let calls = 0
      const lookup = Effect.andThen(Effect.sync(() => calls++), Effect.as(Deferred.await(gate), "value"))
      const fiber = yield* Effect.forkChild(
        Effect.all(Array.from({ length: 100 }, () => cache.get("k", lookup)), { concurrency: "unbounded" })
      )
      yield* Effect.yieldNow
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      const values = yield* Fiber.join(fiber)
      expect(calls).toBe(1)
      expect(new Set(values)).toEqual(new Set(["value"]))
      expect(yield* cache.stats).toMatchObject({ misses: 100, loadSuccesses: 1, entries: 1 })
    }))

  it.effect("failures are not cached: every waiter sees the failure, the next get tries again", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kc-failures", capacity: 10 })
      let calls = 0
      const failing = Effect.andThen(Effect.sync(() => calls++), Effect.fail("down" as const))
      const exits = yield* Effect.all(Array.from({ length: 5 }, () => Effect.exit(cache.get("k", failing))), {
        concurrency: "unbounded"
      })
      expect(calls).toBe(1)
      for (const exit of exits) assert.deepStrictEqual(exit, Exit.fail("down" as const))
      expect(yield* cache.size).toBe(0)
      expect(yield* cache.get("k", Effect.succeed(7))).toBe(7)
      expect(yield* cache.stats).toMatchObject({ loadFailures: 1, loadSuccesses: 1, entries: 1 })
      expect(yield* counterValue("keel_cache_loads", { cache: "kc-failures", result: "failure" })).toBe(1)
    }))

  it.effect("interrupting one waiter does not cancel the shared lookup for the others", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kc-interrupt", capacity: 10 })
      const lookup = Effect.as(Effect.sleep("1 second"), 42)
      const first = yield* Effect.forkChild(cache.get("k", lookup))
      const second = yield* Effect.forkChild(cache.get("k", lookup))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(first)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(second)).toBe(42)
      expect(yield* cache.getOption("k")).toEqual(Option.some(42))
    }))

  it.effect("TTL (expire-after-write) with TestClock; lazy expiry keeps entries exact (seed defect)", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kc-ttl", capacity: 10, timeToLive: "5 minutes" })
      yield* cache.set("a", 1)
      yield* cache.set("b", 2)
      yield* TestClock.adjust(Duration.toMillis("5 minutes") - 1)
      expect(yield* cache.getOption("a")).toEqual(Option.some(1))
      yield* TestClock.adjust(1)
      expect(yield* cache.getOption("a")).toEqual(Option.none())
      // The seed's size metric stayed at 2 here. Ours dropped with the lazy expiry.
      expect((yield* cache.stats).entries).toBe(1)
      expect(yield* gaugeValue("keel_cache_entries", { cache: "kc-ttl" })).toBe(1)
      expect((yield* cache.stats).evictions).toEqual({ capacity: 0, expired: 1, invalidated: 0 })
      expect(yield* cache.sweep).toBe(1)
      expect(yield* gaugeValue("keel_cache_entries", { cache: "kc-ttl" })).toBe(0)
    }))

  it.effect("per-entry TTL from the value (how a server's ttlMs hint sets it)", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, { ttlMs: number }>({
        name: "kc-per-entry",
        capacity: 10,
        timeToLive: (v) => v.ttlMs
      })
      yield* cache.get("short", Effect.succeed({ ttlMs: 1_000 }))
      yield* cache.get("long", Effect.succeed({ ttlMs: 60_000 }))
      yield* cache.set("explicit", { ttlMs: 1 }, { timeToLive: "10 seconds" })
      yield* TestClock.adjust("1 second")
      expect(yield* cache.has("short")).toBe(false)
      expect(yield* cache.has("long")).toBe(true)
      expect(yield* cache.has("explicit")).toBe(true)
      // ttlMs 0 = "immediately stale": not stored at all (and evicts nothing).
      yield* cache.get("zero", Effect.succeed({ ttlMs: 0 }))
      expect(yield* cache.keys).not.toContain("zero")
    }))

  for (const policy of ["lru", "lfu", "fifo", "ttl"] as const) {
    it.effect(`seed defect: updating a key in a full cache never evicts a different key (${policy})`, () =>
      Effect.gen(function*() {
        const cache = yield* KeyedCache.make<string, number>({ name: `kc-update-${policy}`, capacity: 3, policy })
        yield* cache.set("a", 1)
        yield* cache.set("b", 2)
        yield* cache.set("c", 3)
        for (const k of ["a", "b", "c", "a", "c"]) yield* cache.set(k, 10)
        expect([...(yield* cache.keys)].sort()).toEqual(["a", "b", "c"])
        expect((yield* cache.stats).evictions.capacity).toBe(0)
      }))
  }

  it.effect("FIFO: updates do not reorder, so the first inserted is still the first evicted", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kc-fifo", capacity: 2, policy: "fifo" })
      yield* cache.set("a", 1)
      yield* cache.set("b", 2)
      yield* cache.set("a", 3)
      yield* cache.getOption("a")
      yield* cache.set("c", 4)
      expect([...(yield* cache.keys)].sort()).toEqual(["b", "c"])
    }))

  it.effect("a full cache evicts an expired victim as 'expired', a live one as 'capacity'", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kc-reason", capacity: 1, timeToLive: 100 })
      yield* cache.set("a", 1)
      yield* cache.set("b", 2)
      yield* TestClock.adjust(100)
      yield* cache.set("c", 3)
      expect((yield* cache.stats).evictions).toEqual({ capacity: 1, expired: 1, invalidated: 0 })
      expect(yield* counterValue("keel_cache_evictions", { cache: "kc-reason", reason: "expired" })).toBe(1)
    }))

  it.effect("capacity 0 stores nothing", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kc-zero", capacity: 0 })
      let calls = 0
      yield* cache.get("a", Effect.sync(() => ++calls))
      yield* cache.get("a", Effect.sync(() => ++calls))
      expect(calls).toBe(2)
      expect(yield* cache.size).toBe(0)
    }))

  it.effect("invalidate during an in-flight lookup: waiters get the result, but it is not stored", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, string>({ name: "kc-midflight", capacity: 10 })
      const fiber = yield* Effect.forkChild(cache.get("k", Effect.as(Effect.sleep(100), "stale")))
      yield* Effect.yieldNow
      yield* cache.invalidate("k")
      // A get after the invalidation must not join the detached lookup.
      const fresh = yield* Effect.forkChild(cache.get("k", Effect.as(Effect.sleep(200), "fresh")))
      yield* TestClock.adjust(100)
      expect(yield* Fiber.join(fiber)).toBe("stale")
      expect(yield* cache.has("k")).toBe(false)
      yield* TestClock.adjust(100)
      expect(yield* Fiber.join(fresh)).toBe("fresh")
      expect(yield* cache.getOption("k")).toEqual(Option.some("fresh"))
    }))

  it.effect("invalidate / invalidateWhere / invalidateAll count as 'invalidated'", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, number>({ name: "kc-invalidate", capacity: 10 })
      for (const k of ["a1", "a2", "b1", "b2"]) yield* cache.set(k, 1)
      yield* cache.invalidate("a1")
      yield* cache.invalidate("missing")
      yield* cache.invalidateWhere((k) => k.startsWith("b"))
      expect(yield* cache.keys).toEqual(["a2"])
      yield* cache.invalidateAll
      expect(yield* cache.size).toBe(0)
      expect((yield* cache.stats).evictions.invalidated).toBe(4)
    }))

  it.effect("stale-while-revalidate: stale value served at once while one refresh runs; kept if it fails", () =>
    Effect.gen(function*() {
      const cache = yield* KeyedCache.make<string, string>({
        name: "kc-swr",
        capacity: 10,
        timeToLive: "1 minute",
        staleWhileRevalidate: "10 minutes"
      })
      yield* cache.set("k", "v1")
      yield* TestClock.adjust("2 minutes")
      let refreshes = 0
      const slowFail = Effect.andThen(Effect.sync(() => refreshes++), Effect.andThen(Effect.sleep(1_000), Effect.fail("down")))
      // Stale: served immediately, one background refresh for many gets.
      for (let i = 0; i < 5; i++) expect(yield* cache.get("k", slowFail)).toBe("v1")
      yield* Effect.yieldNow
      expect(refreshes).toBe(1)
      yield* TestClock.adjust(1_000) // the refresh fails: the server is down
      expect(yield* cache.get("k", Effect.as(Effect.sleep(1_000), "v2"))).toBe("v1") // still stale, refresh #2 starts
      yield* Effect.yieldNow
      yield* TestClock.adjust(1_000)
      expect(yield* cache.get("k", Effect.die("not called"))).toBe("v2") // refreshed and fresh again
      const s = yield* cache.stats
      expect(s).toMatchObject({ staleHits: 6, hits: 1, loadFailures: 1, loadSuccesses: 1 })
      // Past the stale window: a plain miss.
      yield* TestClock.adjust("12 minutes")
      expect(yield* cache.get("k", Effect.succeed("v3"))).toBe("v3")
      expect((yield* cache.stats).evictions.expired).toBe(1)
    }))

  it.effect("seed defect: the cleanup loop stops with the cache's scope", () =>
    Effect.gen(function*() {
      const cache = yield* Effect.scoped(
        Effect.gen(function*() {
          const cache = yield* KeyedCache.make<string, number>({
            name: "kc-sweeper",
            capacity: 10,
            timeToLive: 100,
            sweepInterval: 50
          })
          yield* cache.set("a", 1)
          yield* TestClock.adjust(150)
          expect(yield* cache.size).toBe(0) // swept without any read
          yield* cache.set("b", 1)
          return cache
        })
      )
      // Scope closed: the sweeper was interrupted, so nothing drops "b" any more.
      yield* TestClock.adjust(1_000)
      expect(yield* cache.size).toBe(1)
    }))

  it.effect("a custom policy plugs in", () =>
    Effect.gen(function*() {
      // Evicts the largest key.
      const largestFirst = <K>(): EvictionPolicy.EvictionPolicy<K> => {
        const keys = new Set<K>()
        return {
          name: "largest-first",
          onInsert: (k) => void keys.add(k),
          onAccess: () => {},
          onUpdate: () => {},
          onRemove: (k) => void keys.delete(k),
          victim: () => [...keys].sort().at(-1),
          clear: () => keys.clear()
        }
      }
      const cache = yield* KeyedCache.make<string, number>({ name: "kc-custom", capacity: 2, policy: largestFirst })
      yield* cache.set("b", 1)
      yield* cache.set("a", 1)
      yield* cache.set("c", 1)
      expect([...(yield* cache.keys)].sort()).toEqual(["a", "c"])
    }))

  // ---------------------------------------------------------------------------
  // Model-based: random get/set/invalidate/advance against a simple reference cache
  // ---------------------------------------------------------------------------

  type Cmd =
    | { readonly _tag: "set"; readonly key: number; readonly value: number }
    | { readonly _tag: "get"; readonly key: number }
    | { readonly _tag: "invalidate"; readonly key: number }
    | { readonly _tag: "advance"; readonly ms: number }

  const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ _tag: fc.constant("set" as const), key: fc.integer({ min: 0, max: 6 }), value: fc.nat(99) }) },
    { weight: 5, arbitrary: fc.record({ _tag: fc.constant("get" as const), key: fc.integer({ min: 0, max: 6 }) }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("invalidate" as const), key: fc.integer({ min: 0, max: 6 }) }) },
    { weight: 2, arbitrary: fc.record({ _tag: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 60 }) }) }
  )

  /** The reference: a plain array of entries, the victim chosen by the policy's definition (O(n)). */
  const referenceCache = (policy: "lru" | "lfu" | "fifo", capacity: number, ttl: number) => {
    type E = { key: number; value: number; expiresAt: number; count: number; stamp: number }
    let entries: Array<E> = []
    let seq = 0
    let ops = 0
    const evictions = { capacity: 0, expired: 0, invalidated: 0 }
    const lfuOrder = () => [...entries].sort((a, b) => a.count - b.count || a.stamp - b.stamp)
    const counted = () => {
      if (policy !== "lfu") return
      ops++
      if (ops >= 10 * entries.length) {
        ops = 0
        for (const e of lfuOrder()) {
          e.count = Math.max(1, e.count >> 1)
          e.stamp = seq++
        }
      }
    }
    const touch = (e: E, isRead: boolean) => {
      if (policy === "fifo") return
      if (policy === "lru") {
        e.stamp = seq++
        return
      }
      void isRead
      e.count++
      e.stamp = seq++
      counted()
    }
    const victim = (): E =>
      policy === "lfu"
        ? lfuOrder()[0]!
        : [...entries].sort((a, b) => a.stamp - b.stamp)[0]!
    const remove = (e: E, reason: keyof typeof evictions) => {
      entries = entries.filter((x) => x !== e)
      evictions[reason]++
    }
    return {
      evictions,
      keys: () => entries.map((e) => e.key).sort((a, b) => a - b),
      set(key: number, value: number, now: number) {
        const held = entries.find((e) => e.key === key)
        if (held) {
          held.value = value
          held.expiresAt = now + ttl
          touch(held, false)
          return
        }
        while (entries.length >= capacity) {
          const v = victim()
          remove(v, v.expiresAt <= now ? "expired" : "capacity")
        }
        entries.push({ key, value, expiresAt: now + ttl, count: 1, stamp: seq++ })
        counted()
      },
      get(key: number, now: number): number | undefined {
        const held = entries.find((e) => e.key === key)
        if (held === undefined) return undefined
        if (now < held.expiresAt) {
          touch(held, true)
          return held.value
        }
        remove(held, "expired")
        return undefined
      },
      invalidate(key: number) {
        const held = entries.find((e) => e.key === key)
        if (held) remove(held, "invalidated")
      }
    }
  }

  const fakeClock = () => {
    const state = { now: 0 }
    const clock: Clock.Clock = {
      currentTimeMillisUnsafe: () => state.now,
      currentTimeMillis: Effect.sync(() => state.now),
      currentTimeNanosUnsafe: () => BigInt(state.now) * 1_000_000n,
      currentTimeNanos: Effect.sync(() => BigInt(state.now) * 1_000_000n),
      monotonicTimeNanosUnsafe: () => BigInt(state.now) * 1_000_000n,
      monotonicTimeNanos: Effect.sync(() => BigInt(state.now) * 1_000_000n),
      sleep: () => Effect.void
    }
    return { state, clock }
  }

  for (const policy of ["lru", "lfu", "fifo"] as const) {
    it(`model-based (${policy}): same hits, same victims, same eviction reasons as the reference`, () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 5 }), fc.array(cmdArb, { maxLength: 200 }), (capacity, cmds) => {
          const ttl = 100
          const { clock, state } = fakeClock()
          const model = referenceCache(policy, capacity, ttl)
          const program = Effect.gen(function*() {
            const cache = yield* KeyedCache.make<number, number>({
              name: `kc-model-${policy}`,
              capacity,
              policy,
              timeToLive: ttl
            })
            for (const cmd of cmds) {
              switch (cmd._tag) {
                case "set":
                  yield* cache.set(cmd.key, cmd.value)
                  model.set(cmd.key, cmd.value, state.now)
                  break
                case "get": {
                  const got = Option.getOrUndefined(yield* cache.getOption(cmd.key))
                  const expected = model.get(cmd.key, state.now)
                  if (got !== expected) return false
                  break
                }
                case "invalidate":
                  yield* cache.invalidate(cmd.key)
                  model.invalidate(cmd.key)
                  break
                case "advance":
                  state.now += cmd.ms
                  break
              }
              const keys = [...(yield* cache.keys)].sort((a, b) => a - b)
              if (JSON.stringify(keys) !== JSON.stringify(model.keys())) return false
              const s = yield* cache.stats
              if (JSON.stringify(s.evictions) !== JSON.stringify(model.evictions)) return false
            }
            return true
          })
          return Effect.runSync(Effect.scoped(Effect.provideService(program, Clock.Clock, clock)))
        }),
        { numRuns: 300 }
      )
    })
  }

  // ---------------------------------------------------------------------------
  // Pins found by mutation testing (`npm run mutation`, MUTATION.md)
  // ---------------------------------------------------------------------------
  describe("mutation pins", () => {
    it("metric names, help texts and histogram buckets are the public Prometheus surface", () => {
      const m = KeyedCache.metrics
      expect([m.requests.id, m.loads.id, m.evictions.id, m.entries.id, m.hitRatio.id, m.fetchDuration.id]).toEqual([
        "keel_cache_requests",
        "keel_cache_loads",
        "keel_cache_evictions",
        "keel_cache_entries",
        "keel_cache_hit_ratio",
        "keel_cache_fetch_duration_seconds"
      ])
      expect(m.requests.description).toBe("Cache lookups by result (hit, miss, stale)")
      expect(m.loads.description).toBe("Cache lookups (fetches) by result (success, failure)")
      expect(m.evictions.description).toBe("Entries removed from a cache, by reason (capacity, expired, invalidated)")
      expect(m.entries.description).toBe("Entries held by a cache")
      expect(m.hitRatio.description).toBe("Hits (fresh and stale) over requests since the cache was made")
      expect(m.fetchDuration.description).toBe("Duration of cache lookups (fetches), successful or not")
    })

    it.effect("every counter series (stale, each eviction reason, per-key groups), the hit ratio and fetch durations", () =>
      Effect.gen(function*() {
        const cache = yield* KeyedCache.make<string, string>({
          name: "kc-pins",
          capacity: 2,
          timeToLive: "1 minute",
          staleWhileRevalidate: "1 minute",
          keyAttributes: (key) => ({ group: key.slice(0, 1) })
        })
        const attrs = { cache: "kc-pins" }
        yield* cache.get("a1", Effect.as(Effect.sleep(250), "v")).pipe(Effect.forkChild, Effect.andThen(TestClock.adjust(250)))
        yield* Effect.yieldNow
        yield* TestClock.adjust("90 seconds") // a1 stale
        expect(yield* cache.get("a1", Effect.never)).toBe("v") // stale hit; refresh never completes
        expect(yield* cache.get("a1", Effect.die("a refresh is already running"))).toBe("v")
        expect(yield* cache.get("b1", Effect.succeed("w"))).toBe("w") // miss, group b
        expect(yield* cache.get("b1", Effect.die("hit"))).toBe("w")
        // With keyAttributes every request counts in its key's group only.
        expect(yield* counterValue("keel_cache_requests", { ...attrs, result: "stale" })).toBe(0)
        expect(yield* counterValue("keel_cache_requests", { ...attrs, group: "a", result: "stale" })).toBe(2)
        expect(yield* counterValue("keel_cache_requests", { ...attrs, group: "a", result: "miss" })).toBe(1)
        expect(yield* counterValue("keel_cache_requests", { ...attrs, group: "b", result: "miss" })).toBe(1)
        expect(yield* counterValue("keel_cache_requests", { ...attrs, group: "b", result: "hit" })).toBe(1)
        expect(yield* counterValue("keel_cache_loads", { ...attrs, group: "a", result: "success" })).toBe(1)
        // 2 stale + 1 hit over 2 misses + 3 = 3/5
        expect(yield* gaugeValue("keel_cache_hit_ratio", attrs)).toBeCloseTo(3 / 5)
        const stats = yield* cache.stats
        expect(stats).toMatchObject({ hits: 1, staleHits: 2, misses: 2, requests: 5 })
        expect(stats.hitRate).toBeCloseTo(3 / 5)
        expect(stats.missRate).toBeCloseTo(2 / 5)
        // The a1 load took 250 ms: one observation in the (0.1, 0.25] bucket of group a.
        const hist = yield* Metric.value(Metric.withAttributes(KeyedCache.metrics.fetchDuration, { ...attrs, group: "a" }))
        expect(hist.count).toBe(1)
        expect(hist.sum).toBeCloseTo(0.25)
        expect(hist.buckets.map(([b]) => b)).toEqual([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
        // Evictions by reason.
        yield* cache.set("c1", "x") // full (a1 stale-servable, b1 fresh): the LRU victim a1 is live → capacity
        expect(yield* counterValue("keel_cache_evictions", { ...attrs, reason: "capacity" })).toBe(1)
        yield* cache.invalidate("b1")
        expect(yield* counterValue("keel_cache_evictions", { ...attrs, reason: "invalidated" })).toBe(1)
        yield* TestClock.adjust("3 minutes")
        expect(yield* cache.sweep).toBe(1)
        expect(yield* cache.sweep).toBe(0)
        expect(yield* counterValue("keel_cache_evictions", { ...attrs, reason: "expired" })).toBe(1)
        expect(yield* gaugeValue("keel_cache_entries", attrs)).toBe(0)
      }))

    it.effect("hit ratio and rates are 0 before any request; closing the scope unregisters the series", () =>
      Effect.gen(function*() {
        const attrs = { cache: "kc-pins-scope" }
        yield* Effect.scoped(Effect.gen(function*() {
          const cache = yield* KeyedCache.make<string, number>({ name: "kc-pins-scope" })
          expect(yield* gaugeValue("keel_cache_hit_ratio", attrs)).toBe(0)
          const s = yield* cache.stats
          expect([s.hitRate, s.missRate]).toEqual([0, 0])
          yield* cache.set("k", 1)
          expect(yield* cache.get("k", Effect.die("hit"))).toBe(1)
          expect(yield* counterValue("keel_cache_requests", { ...attrs, result: "hit" })).toBe(1)
        }))
        // Unregistered: the series no longer reads the (gone) cache's counters.
        expect(yield* counterValue("keel_cache_requests", { ...attrs, result: "hit" })).toBe(0)
        expect(yield* gaugeValue("keel_cache_entries", attrs)).toBe(0)
      }))

    it.effect("getOption, has and peek at the expiry boundary; getOption drops only unservable entries", () =>
      Effect.gen(function*() {
        const cache = yield* KeyedCache.make<string, number>({
          name: "kc-pins-option",
          timeToLive: 1_000,
          staleWhileRevalidate: 1_000
        })
        yield* cache.set("k", 1)
        yield* TestClock.adjust(999)
        expect(yield* cache.has("k")).toBe(true)
        expect(yield* cache.peek("k")).toEqual(Option.some(1))
        yield* TestClock.adjust(1) // now == expiresAt: not fresh
        expect(yield* cache.has("k")).toBe(false)
        expect(yield* cache.peek("k")).toEqual(Option.none())
        expect(yield* cache.getOption("k")).toEqual(Option.none()) // stale: not served, but still held
        expect(yield* cache.size).toBe(1)
        yield* TestClock.adjust(1_000) // past the stale window
        expect(yield* cache.getOption("k")).toEqual(Option.none())
        expect(yield* cache.size).toBe(0)
        expect((yield* cache.stats).evictions.expired).toBe(1)
        expect(yield* counterValue("keel_cache_requests", { cache: "kc-pins-option", result: "miss" })).toBe(2)
        yield* cache.set("j", 2)
        expect(yield* cache.getOption("j")).toEqual(Option.some(2))
        expect(yield* counterValue("keel_cache_requests", { cache: "kc-pins-option", result: "hit" })).toBe(1)
      }))

    it.effect("reads touch the policy (lru): a stale hit and a getOption hit both move the key back", () =>
      Effect.gen(function*() {
        const cache = yield* KeyedCache.make<string, number>({
          name: "kc-pins-touch",
          capacity: 2,
          timeToLive: 1_000,
          staleWhileRevalidate: 10_000
        })
        yield* cache.set("a", 1)
        yield* cache.set("b", 2)
        expect(yield* cache.getOption("a")).toEqual(Option.some(1)) // a is now the most recent
        yield* cache.set("c", 3) // evicts b
        expect([...(yield* cache.keys)].sort()).toEqual(["a", "c"])
        yield* TestClock.adjust(2_000) // a and c stale
        expect(yield* cache.get("a", Effect.never)).toBe(1) // stale hit touches a
        yield* cache.set("d", 4) // evicts c
        expect([...(yield* cache.keys)].sort()).toEqual(["a", "d"])
        // Even with a refresh running (never completes), the stale hit still touches a.
        expect(yield* cache.get("a", Effect.die("refresh already running"))).toBe(1)
        yield* cache.set("e", 5) // d was set later than a's last touch? a touched last: d goes
        expect([...(yield* cache.keys)].sort()).toEqual(["a", "e"])
      }))

    it.effect("an entry that is unservable at once is not stored; a custom policy without a usable victim never overfills", () =>
      Effect.gen(function*() {
        const zero = yield* KeyedCache.make<string, number>({ name: "kc-pins-zero", timeToLive: 0 })
        yield* zero.set("k", 1)
        expect(yield* zero.size).toBe(0)
        const noVictim = <K>(): EvictionPolicy.EvictionPolicy<K> => ({
          name: "none",
          onInsert: () => {},
          onAccess: () => {},
          onUpdate: () => {},
          onRemove: () => {},
          victim: () => undefined,
          clear: () => {}
        })
        const stranger = <K>(): EvictionPolicy.EvictionPolicy<K> => ({ ...noVictim<K>(), victim: () => "not-held" as K })
        for (const policy of [noVictim, stranger]) {
          const cache = yield* KeyedCache.make<string, number>({ name: `kc-pins-${policy.name}`, capacity: 1, policy })
          yield* cache.set("a", 1)
          yield* cache.set("b", 2)
          expect(yield* cache.keys).toEqual(["a"])
        }
      }))

    it.effect("an invalidated in-flight load is detached: a new get starts its own load; invalidateWhere only matching keys", () =>
      Effect.gen(function*() {
        const cache = yield* KeyedCache.make<string, string>({ name: "kc-pins-detach" })
        const gate = yield* Deferred.make<void>()
        const first = yield* Effect.forkChild(cache.get("a", Effect.as(Deferred.await(gate), "old")))
        const other = yield* Effect.forkChild(cache.get("b", Effect.as(Deferred.await(gate), "kept")))
        yield* Effect.yieldNow
        yield* cache.invalidateWhere((k) => k === "a")
        expect(yield* cache.get("a", Effect.succeed("new"))).toBe("new") // not joined to the detached load
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Fiber.join(first)).toBe("old")
        expect(yield* Fiber.join(other)).toBe("kept")
        expect(yield* cache.peek("a")).toEqual(Option.some("new")) // the detached result did not overwrite it
        expect(yield* cache.peek("b")).toEqual(Option.some("kept")) // b's load was not detached
      }))

    it.effect("fromConfig passes the extras (policy, per-value TTL, storeAs, key attributes) through", () =>
      Effect.gen(function*() {
        const config = Schema.decodeUnknownSync(KeyedCache.KeyedCacheConfig)({ capacity: 5, policy: "lfu", timeToLive: 60_000 })
        const plain = yield* KeyedCache.fromConfig<string, number>("kc-pins-config", config)
        expect(plain.capacity).toBe(5)
        expect((plain as unknown as { toJSON(): unknown }).toJSON()).toMatchObject({ policy: "lfu", capacity: 5 })
        let stored: Array<string> = []
        const cache = yield* KeyedCache.fromConfig<string, number>("kc-pins-config-extra", config, {
          policy: EvictionPolicy.fifo,
          timeToLive: (value) => value,
          storeAs: (_v, key) => `stored:${key}`,
          keyAttributes: (key) => {
            stored = [...stored, key]
            return { k: key.slice(0, 1) }
          }
        })
        expect((cache as unknown as { toJSON(): unknown }).toJSON()).toMatchObject({ policy: "fifo" })
        expect(yield* cache.get("x", Effect.succeed(1_000))).toBe(1_000)
        expect(yield* cache.keys).toEqual(["stored:x"])
        expect(stored).toContain("x")
        yield* TestClock.adjust(1_000) // the value is its own TTL
        expect(yield* cache.has("stored:x")).toBe(false)
      }))
  })
})
