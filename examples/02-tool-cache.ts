/**
 * Tool cache (tutorial 4, Part 2 and Exercise 2): the tool list of a server, cached, against the embedded
 * demo server. Everything printed is measured on this run:
 *
 * 1. a miss then a hit, and how much faster a hit is than a live `tools/list` (medians of many runs);
 * 2. TTL expiry with a real 200 ms TTL: found, found, gone, refetched (counted by the server itself);
 * 3. `notifications/tools/list_changed` invalidation: `set_tools` on the server, the next lookup refetches;
 * 4. the eviction policies (LRU, LFU, FIFO, TTL, and a custom one) on the same access sequence.
 *
 * Seed names: `NewToolCache(config)` → `ToolCache.make(options)` / `ToolCache.layer(options)`,
 * `EvictionPolicy` → `policy`, `MaxEntries` → `capacity`, `TTL` → `timeToLive`, `Get`/`Set` →
 * `getOption`/`set` (and `list`/`get`, which fetch on a miss), `GetMetrics()` → `stats`.
 *
 * Run: `npm run example -- 02`.
 */
import { NodeRuntime } from "@effect/platform-node"
import type * as EvictionPolicy from "@keel/core/EvictionPolicy"
import * as KeyedCache from "@keel/core/KeyedCache"
import { McpClient, type McpConnection } from "@keel/core/McpClient"
import { ToolCache } from "@keel/core/ToolCache"
import { demoStdio } from "@keel/demo-server"
import { Console, Effect, Option } from "effect"

const smoke = process.env.KEEL_EXAMPLE_SMOKE === "1"
/** Live `tools/list` round trips to time, and batches of cache hits (each batch times `HIT_BATCH` hits). */
const LIVE_RUNS = smoke ? 40 : 200
const HIT_BATCHES = smoke ? 20 : 100
const HIT_BATCH = 1_000

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}
const fmtMs = (ms: number): string => (ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(2)} µs`)

/** How many `tools/list` walks the demo server has served: its own count, via its `stats` tool. */
const serverListCount = (c: McpConnection) =>
  Effect.map(c.callTool("stats"), (r) => {
    const first = r.content[0]
    return (JSON.parse(first?.type === "text" ? first.text : "{}") as { listToolsRequests: number }).listToolsRequests
  })

// ---------------------------------------------------------------------------------------------------------
// 1. Miss, hit, speed-up
// ---------------------------------------------------------------------------------------------------------

const missThenHit = (c: McpConnection) =>
  Effect.gen(function*() {
    yield* Console.log("\n== 1. Miss, then hit (LRU, capacity 100, TTL 10 minutes) ==")
    const cache = yield* ToolCache.make({ name: "example-tools", policy: "lru", capacity: 100, timeToLive: "10 minutes" })

    // The seed's `Get("demo")`: never fetches.
    const first = yield* cache.getOption(c.name)
    yield* Console.log(`getOption("${c.name}") the first time: ${Option.isSome(first) ? "found" : "not found (miss)"}`)

    let t0 = performance.now()
    const fetched = yield* cache.list(c) // miss: one tools/list to the server, then stored
    yield* Console.log(`list() on a miss: fetched ${fetched.tools.length} tools in ${fmtMs(performance.now() - t0)}`)

    t0 = performance.now()
    const hit = yield* cache.list(c)
    yield* Console.log(
      `list() again: ${hit.tools.length} tools in ${fmtMs(performance.now() - t0)} (a hit; same object: ${hit === fetched})`
    )

    // Speed-up: many live tools/list round trips vs many hits, medians of each.
    const live: Array<number> = []
    for (let i = 0; i < LIVE_RUNS; i++) {
      const s = performance.now()
      yield* c.listTools()
      live.push(performance.now() - s)
    }
    const hits: Array<number> = []
    for (let b = 0; b < HIT_BATCHES; b++) {
      const s = performance.now()
      for (let i = 0; i < HIT_BATCH; i++) yield* cache.list(c)
      hits.push((performance.now() - s) / HIT_BATCH)
    }
    const liveMedian = median(live)
    const hitMedian = median(hits)
    yield* Console.log(`live tools/list (${fetched.tools.length} tools): median ${fmtMs(liveMedian)} over ${LIVE_RUNS} calls`)
    yield* Console.log(`cache hit:                   median ${fmtMs(hitMedian)} per hit over ${HIT_BATCHES} batches of ${HIT_BATCH}`)
    yield* Console.log(`speed-up of a hit: ${Math.round(liveMedian / hitMedian).toLocaleString("en-US")}x (ratio of the medians)`)
    yield* Console.log(`server-side count of tools/list walks so far: ${yield* serverListCount(c)} (1 for the miss + ${LIVE_RUNS} live)`)

    const stats = yield* cache.stats
    yield* Console.log(
      `stats: ${stats.entries} entry, ${stats.requests.toLocaleString("en-US")} requests, hit rate ${(stats.hitRate * 100).toFixed(3)}%, ` +
        `miss rate ${(stats.missRate * 100).toFixed(3)}%, loads ${stats.loadSuccesses}`
    )
  })

// ---------------------------------------------------------------------------------------------------------
// 2. TTL expiry
// ---------------------------------------------------------------------------------------------------------

const ttlExpiry = (c: McpConnection) =>
  Effect.gen(function*() {
    const ttlMs = 200
    yield* Console.log(`\n== 2. TTL expiry (timeToLive ${ttlMs} ms) ==`)
    const cache = yield* ToolCache.make({ name: "example-tools-ttl", timeToLive: `${ttlMs} millis` })
    const base = yield* serverListCount(c)
    const fetchesSince = Effect.map(serverListCount(c), (n) => n - base)

    const start = performance.now()
    yield* cache.list(c)
    yield* Console.log(`stored at t=0 ms; server tools/list walks since: ${yield* fetchesSince}`)
    const probe = (label: string) =>
      Effect.gen(function*() {
        const found = Option.isSome(yield* cache.getOption(c.name))
        const at = (performance.now() - start).toFixed(0)
        yield* Console.log(`${label} t=${at} ms: found=${found}`)
      })
    yield* probe("immediately,")
    yield* Effect.sleep(ttlMs / 2)
    yield* probe("after half the TTL,")
    yield* Effect.sleep(ttlMs / 2 + 50)
    yield* probe("after the TTL,")
    yield* cache.list(c)
    yield* Console.log(`list() after expiry refetched: server tools/list walks since storing: ${yield* fetchesSince}`)
    const stats = yield* cache.stats
    yield* Console.log(`evictions: expired ${stats.evictions.expired}, loads ${stats.loadSuccesses}`)
  })

// ---------------------------------------------------------------------------------------------------------
// 3. list_changed invalidation
// ---------------------------------------------------------------------------------------------------------

const listChanged = (c: McpConnection) =>
  Effect.gen(function*() {
    yield* Console.log("\n== 3. notifications/tools/list_changed invalidates the entry (TTL 1 hour) ==")
    const cache = yield* ToolCache.make({ name: "example-tools-watch", timeToLive: "1 hour" })
    yield* cache.watch(c) // list_changed → invalidate(c.name), for the life of the scope
    const base = yield* serverListCount(c)

    const before = yield* cache.list(c)
    yield* cache.list(c)
    yield* Console.log(
      `cached ${before.tools.length} tools ("weather" listed: ${before.tools.some((t) => t.name === "weather")}); ` +
        `server walks since: ${(yield* serverListCount(c)) - base}`
    )

    const t0 = performance.now()
    yield* c.callTool("set_tools", { add: ["weather"] }) // the server changes its list and notifies
    // The notification is handled by the watch fiber; wait (without counting a lookup) until it landed.
    yield* Effect.gen(function*() {
      while (yield* cache.cache.has(c.name)) yield* Effect.sleep(1)
    }).pipe(Effect.timeout("5 seconds"))
    yield* Console.log(`set_tools sent; entry invalidated ${fmtMs(performance.now() - t0)} after the call started`)

    const after = yield* cache.list(c)
    const stats = yield* cache.stats
    yield* Console.log(
      `next list(): ${after.tools.length} tools ("weather" listed: ${after.tools.some((t) => t.name === "weather")}); ` +
        `server walks since: ${(yield* serverListCount(c)) - base}; evictions.invalidated = ${stats.evictions.invalidated}`
    )
    // Leave the server as it was for anything that runs after.
    yield* c.callTool("set_tools", { remove: ["weather"] })
  })

// ---------------------------------------------------------------------------------------------------------
// 4. Eviction policies on a small generic cache
// ---------------------------------------------------------------------------------------------------------

/**
 * A custom policy: most recently used goes first (good for one-off scans that would flush an LRU). The
 * cache calls one hook per key event; the policy only picks the victim. O(n) victim, fine for a demo.
 */
const mru = <K>(): EvictionPolicy.EvictionPolicy<K> => {
  const order = new Set<K>() // insertion order of a Set = recency order, newest last
  const touch = (k: K) => {
    order.delete(k)
    order.add(k)
  }
  return {
    name: "mru",
    onInsert: touch,
    onAccess: touch,
    onUpdate: touch,
    onRemove: (k) => void order.delete(k),
    victim: () => [...order].at(-1),
    clear: () => order.clear()
  }
}

const SEQUENCE = "set A, set B, set C; get B, get B, get C, get A; set D"

const evictionPolicies = Effect.gen(function*() {
  yield* Console.log(`\n== 4. Eviction policies, capacity 3, sequence: ${SEQUENCE} ==`)
  const policies: ReadonlyArray<
    readonly [string, EvictionPolicy.EvictionPolicyName | EvictionPolicy.EvictionPolicyFactory, string]
  > = [
    ["lru", "lru", "least recently used"],
    ["lfu", "lfu", "least frequently used, ties → least recently used"],
    ["fifo", "fifo", "oldest insertion"],
    ["ttl", "ttl", "FIFO + expire-after-write: oldest insertion = closest to expiry"],
    ["custom mru", mru, "most recently used (the custom policy above)"]
  ]
  for (const [label, policy, rule] of policies) {
    yield* Effect.scoped(Effect.gen(function*() {
      const ttlMs = 150
      const cache = yield* KeyedCache.make<string, string>({
        name: `example-eviction-${label.replace(" ", "-")}`,
        capacity: 3,
        policy,
        // Only the "ttl" cache gets a short TTL; it shows expiry after the capacity eviction.
        timeToLive: label === "ttl" ? `${ttlMs} millis` : "1 hour"
      })
      for (const k of ["A", "B", "C"]) yield* cache.set(k, `value ${k}`)
      for (const k of ["B", "B", "C", "A"]) yield* cache.get(k, Effect.die(`${k} should be a hit`))
      const before = yield* cache.keys
      yield* cache.set("D", "value D")
      const after = yield* cache.keys
      const evicted = before.filter((k) => !after.includes(k))
      const stats = yield* cache.stats
      yield* Console.log(
        `${label.padEnd(10)} evicts ${evicted.join(",") || "nothing"} → holds [${after.join(", ")}]` +
          ` (capacity evictions: ${stats.evictions.capacity}; rule: ${rule})`
      )
      if (label === "ttl") {
        // TTL = FIFO victim selection + expire-after-write: the oldest insertion is also the closest to expiry.
        yield* Effect.sleep(ttlMs + 50)
        const live = yield* Effect.filter(after, (k) => cache.has(k))
        const dropped = yield* cache.sweep
        yield* Console.log(
          `${"".padEnd(10)} after ${ttlMs + 50} ms: ${live.length} fresh entries; sweep dropped ${dropped} expired, ` +
            `size now ${yield* cache.size}`
        )
      }
    }))
  }
})

// ---------------------------------------------------------------------------------------------------------

const program = Effect.gen(function*() {
  // 100 extra generated tools beside the built-in ones, so a tools/list carries a realistic payload.
  const client = yield* McpClient.connect("demo", { type: "stdio", ...demoStdio({ extraTools: 100 }) })
  yield* Console.log(`connected to ${client.serverInfo.name} (pid ${client.pid})`)
  yield* missThenHit(client)
  yield* ttlExpiry(client)
  yield* listChanged(client)
  yield* evictionPolicies
})

// A failure (the demo server not starting, a typed McpError) is reported by runMain with exit code 1.
NodeRuntime.runMain(Effect.scoped(program))
