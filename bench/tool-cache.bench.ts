/**
 * Tool cache benchmark. Run from the repo root with Node 22:
 *
 *   export PATH=$PWD/node_modules/.bin:$PATH && node bench/tool-cache.bench.ts
 *
 * One run measures, side by side:
 *  1. raw get/set throughput of each eviction policy (the policy + a Map, synchronous) next to `lru-cache`,
 *     and the same workload through `KeyedCache` inside one Effect program;
 *  2. `ToolCache.get` hit latency inside an Effect program (per-hit samples: median, p99);
 *  3. a live `tools/list` against the demo server and against `@modelcontextprotocol/server-everything`
 *     (stdio, warm connection), and the ratio live / hit.
 * Prints a markdown table and writes bench/RESULTS-tool-cache.md. Every number comes from this run.
 */
import { execSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { fileURLToPath } from "node:url"
import { demoStdio } from "@keel/demo-server"
import { Effect } from "effect"
import { LRUCache } from "lru-cache"
import * as EvictionPolicy from "../packages/core/src/EvictionPolicy.ts"
import * as KeyedCache from "../packages/core/src/KeyedCache.ts"
import { McpClient } from "../packages/core/src/McpClient.ts"
import { ToolCache } from "../packages/core/src/ToolCache.ts"
import { quantile } from "./report.ts"

const CAPACITY = 1_000
const KEYSPACE = 2_000
const OPS = 1_000_000


// A skewed key stream (80% of requests on 20% of keys), fixed seed, shared by every contender.
const keys = (() => {
  let x = 123456789
  const rand = () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 4294967296
  }
  const out = new Int32Array(OPS)
  for (let i = 0; i < OPS; i++) {
    out[i] = rand() < 0.8 ? Math.floor(rand() * KEYSPACE * 0.2) : Math.floor(KEYSPACE * 0.2 + rand() * KEYSPACE * 0.8)
  }
  return out
})()

interface Row {
  readonly name: string
  readonly opsPerSec: number
  readonly hitRate: number
}

/** get(k); on a miss set(k) — the read-through pattern of a tool cache. Best of 3 runs. */
const throughput = (name: string, make: () => { get: (k: number) => number | undefined; set: (k: number, v: number) => void }): Row => {
  let best = 0
  let hitRate = 0
  for (let run = 0; run < 3; run++) {
    const c = make()
    let hits = 0
    const start = performance.now()
    for (let i = 0; i < OPS; i++) {
      const k = keys[i]!
      if (c.get(k) !== undefined) hits++
      else c.set(k, k)
    }
    const secs = (performance.now() - start) / 1000
    best = Math.max(best, OPS / secs)
    hitRate = hits / OPS
  }
  return { name, opsPerSec: best, hitRate }
}

/** What KeyedCache does per operation, minus Effect: a Map plus the policy. */
const policyCore = (factory: EvictionPolicy.EvictionPolicyFactory) => () => {
  const map = new Map<number, number>()
  const policy = factory<number>()
  return {
    get: (k: number) => {
      const v = map.get(k)
      if (v !== undefined) policy.onAccess(k)
      return v
    },
    set: (k: number, v: number) => {
      if (map.has(k)) {
        map.set(k, v)
        policy.onUpdate(k)
        return
      }
      if (map.size >= CAPACITY) {
        const victim = policy.victim()!
        map.delete(victim)
        policy.onRemove(victim)
      }
      map.set(k, v)
      policy.onInsert(k)
    }
  }
}

const keyedCacheThroughput = (policy: "lru" | "lfu" | "fifo"): Promise<Row> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        let best = 0
        let hitRate = 0
        for (let run = 0; run < 3; run++) {
          const cache = yield* KeyedCache.make<number, number>({
            name: `bench-${policy}-${run}`,
            capacity: CAPACITY,
            policy,
            timeToLive: "1 hour"
          })
          let hits = 0
          const start = performance.now()
          for (let i = 0; i < OPS; i++) {
            const k = keys[i]!
            const o = yield* cache.getOption(k)
            if (o._tag === "Some") hits++
            else yield* cache.set(k, k)
          }
          const secs = (performance.now() - start) / 1000
          best = Math.max(best, OPS / secs)
          hitRate = hits / OPS
        }
        return { name: `KeyedCache ${policy} (Effect, getOption/set)`, opsPerSec: best, hitRate }
      })
    )
  )

// ---------------------------------------------------------------------------------------------------------

const fmtOps = (n: number) => `${(n / 1e6).toFixed(2)} M/s`
const fmtUs = (n: number) => (n < 10 ? n.toFixed(3) : n < 1000 ? n.toFixed(1) : n.toFixed(0))

// 2. Hit latency inside an Effect program
const SAMPLES = 200_000
const measureHit = () =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const cache = yield* ToolCache.make({ name: "bench-tools" })
        const fetch = Effect.succeed({ tools: [{ name: "echo", inputSchema: { type: "object" as const } }] })
        yield* cache.get("demo", fetch)
        // Warm-up
        for (let i = 0; i < 50_000; i++) yield* cache.get("demo", fetch)
        const samples: Array<number> = new Array(SAMPLES)
        for (let i = 0; i < SAMPLES; i++) {
          const t0 = performance.now()
          yield* cache.get("demo", fetch)
          samples[i] = (performance.now() - t0) * 1000
        }
        // Batches of 1000 (removes the timer's own cost from the figure).
        const batches: Array<number> = []
        for (let b = 0; b < 200; b++) {
          const t0 = performance.now()
          for (let i = 0; i < 1000; i++) yield* cache.get("demo", fetch)
          batches.push(((performance.now() - t0) * 1000) / 1000)
        }
        let timerOverhead: Array<number> = []
        for (let i = 0; i < 100_000; i++) {
          const t0 = performance.now()
          timerOverhead.push((performance.now() - t0) * 1000)
        }
        return {
          median: quantile(samples, 0.5),
          p99: quantile(samples, 0.99),
          batchMedian: quantile(batches, 0.5),
          timerMedian: quantile(timerOverhead, 0.5),
          stats: yield* cache.stats
        }
      })
    )
  )

const main = async () => {
  const lines: Array<string> = []
  const log = (s = "") => {
    console.log(s)
    lines.push(s)
  }

  // 2 first: the hit in a process where the tool cache is the only KeyedCache user (as in an application);
  // again after section 1, where the same code served three policies and numeric keys (its call sites
  // then megamorphic).
  const hit = await measureHit()

  // 1. Raw throughput
  const rows: Array<Row> = []
  rows.push(throughput("lru-cache 11 (LRUCache, max 1000)", () => {
    const c = new LRUCache<number, number>({ max: CAPACITY })
    return { get: (k) => c.get(k), set: (k, v) => void c.set(k, v) }
  }))
  rows.push(throughput("Keel lru policy + Map (sync core)", policyCore(EvictionPolicy.lru)))
  rows.push(throughput("Keel lfu policy + Map (sync core)", policyCore(<K>() => EvictionPolicy.lfu<K>())))
  rows.push(throughput("Keel fifo policy + Map (sync core)", policyCore(EvictionPolicy.fifo)))
  for (const p of ["lru", "lfu", "fifo"] as const) rows.push(await keyedCacheThroughput(p))
  const lruCacheOps = rows[0]!.opsPerSec

  log(`## 1. Raw get/set throughput (read-through: get, set on miss)`)
  log()
  log(`${OPS.toLocaleString("en")} operations, capacity ${CAPACITY}, ${KEYSPACE} keys (80% of requests on 20% of keys); best of 3 runs.`)
  log()
  log(`| cache | throughput | vs lru-cache | hit rate |`)
  log(`|---|---:|---:|---:|`)
  for (const r of rows) {
    log(`| ${r.name} | ${fmtOps(r.opsPerSec)} | ${(r.opsPerSec / lruCacheOps).toFixed(2)}× | ${(r.hitRate * 100).toFixed(1)}% |`)
  }
  log()

  const hitAfter = await measureHit()

  log(`## 2. ToolCache.get hit inside an Effect program`)
  log()
  log(`| measure | µs |`)
  log(`|---|---:|`)
  log(`| hit, per-call samples (${SAMPLES.toLocaleString("en")}), median | ${fmtUs(hit.median)} |`)
  log(`| hit, per-call samples, p99 | ${fmtUs(hit.p99)} |`)
  log(`| hit, mean of 1,000-hit batches, median of 200 batches | ${fmtUs(hit.batchMedian)} |`)
  log(`| (timer cost: two performance.now() calls, median) | ${fmtUs(hit.timerMedian)} |`)
  log(`| the same after section 1 (the cache code served lru, lfu and fifo with numeric keys: megamorphic call sites): per-call median | ${fmtUs(hitAfter.median)} |`)
  log(`| the same after section 1: mean of 1,000-hit batches, median | ${fmtUs(hitAfter.batchMedian)} |`)
  log()
  log(`The first rows run before anything else in this process, as in an application whose one \`KeyedCache\` is the tool cache; the last two after section 1 in the same process.`)
  log()
  log(`Target: a hit ≤ 0.3 µs (mean of batches, without the timer) → ${hit.batchMedian <= 0.3 ? "met" : "NOT met"} (${fmtUs(hit.batchMedian)} µs; ${fmtUs(hitAfter.batchMedian)} µs after section 1).`)
  log()

  // 3. Live tools/list vs hit
  const everythingEntry = fileURLToPath(
    new URL("../node_modules/@modelcontextprotocol/server-everything/dist/index.js", import.meta.url)
  )
  const live = (name: string, command: string, args: Array<string>) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const c = yield* McpClient.connect(name, { type: "stdio", command, args })
          const first = yield* c.listTools()
          for (let i = 0; i < 20; i++) yield* c.listTools() // warm
          const samples: Array<number> = []
          for (let i = 0; i < 300; i++) {
            const t0 = performance.now()
            yield* c.listTools()
            samples.push((performance.now() - t0) * 1000)
          }
          return { tools: first.tools.length, median: quantile(samples, 0.5), p99: quantile(samples, 0.99) }
        })
      )
    )
  const demoCmd = demoStdio()
  const demo = await live("demo", demoCmd.command, demoCmd.args)
  const everything = await live("everything", process.execPath, [everythingEntry, "stdio"])

  log(`## 3. Cache hit vs a live tools/list (stdio, warm connection, 300 sequential calls)`)
  log()
  log(`| source | tools | median µs | p99 µs | live median / hit median |`)
  log(`|---|---:|---:|---:|---:|`)
  // The hit's figure: the mean of 1,000-hit batches (per-call samples add two performance.now() calls).
  const h = hit.batchMedian
  log(`| ToolCache hit (mean of batches; per-call p99 ${fmtUs(hit.p99)}) | – | ${fmtUs(h)} | – | 1× |`)
  log(`| live tools/list, Keel demo server | ${demo.tools} | ${fmtUs(demo.median)} | ${fmtUs(demo.p99)} | ${Math.round(demo.median / h).toLocaleString("en")}× |`)
  log(`| live tools/list, server-everything | ${everything.tools} | ${fmtUs(everything.median)} | ${fmtUs(everything.p99)} | ${Math.round(everything.median / h).toLocaleString("en")}× |`)
  log()
  const worst = Math.min(demo.median, everything.median) / h
  log(`Target: ≥ 3,000× faster than a warm tools/list → ${worst >= 3000 ? "met" : "NOT met"} (smallest ratio ${Math.round(worst).toLocaleString("en")}×).`)

  const cpu = cpus()[0]?.model ?? "unknown"
  const nproc = execSync("nproc").toString().trim()
  const machine = `- Machine: ${cpu}, nproc ${nproc}, Node ${process.version}, ${process.platform}/${process.arch}\n- Date: ${new Date().toISOString()}\n- Command: \`node bench/tool-cache.bench.ts\``
  console.log()
  console.log(machine)
  writeFileSync(
    new URL("./RESULTS-tool-cache.md", import.meta.url),
    `# Tool cache benchmark\n\n${machine}\n\nAll figures below come from that one run (a shared 2-core machine: expect noise).\n\n${lines.join("\n")}\n`
  )
}

main().then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
