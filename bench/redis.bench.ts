/**
 * Scale-out benchmark: the per-call cost of each shared feature next to its in-process figure, and how
 * many Redis round trips each call makes, against a real `redis-server` started here (free loopback port,
 * temp dir, no persistence; stopped at the end).
 *
 *   node bench/redis.bench.ts            # print the tables
 *   node bench/redis.bench.ts --write    # also write bench/RESULTS-redis.md
 *
 * Method: as the breaker benchmark: each case runs `BATCH` calls back to back in one fiber and records the
 * batch's time / BATCH as one sample; median and p99 over the samples; 3 interleaved rounds, each case's
 * best round kept. Redis round trips per call = client commands (INFO commandstats) before and after a
 * counted run of N calls (INFO commandstats), without PINGs and the Lua scripts' inner commands, over N.
 * commandTimeout is 1 s here, so a loaded machine does not read as a Redis outage mid-run.
 * Propagation: two registries with their own Redis clients in this process; A's breaker is opened, the
 * time until B's breaker is ForcedOpen is measured (polled every 0.1 ms), then A is reset and B released.
 */
import { Context, Duration, Effect, Exit, Layer, Scope } from "effect"
import { CircuitBreakerRegistry } from "../packages/core/src/CircuitBreaker.ts"
import { decodeRedis, type ServerLimitsConfig } from "../packages/core/src/ScaleOutConfig.ts"
import * as ServerLimits from "../packages/core/src/ServerLimits.ts"
import * as SharedBreakers from "../packages/core/src/SharedBreakers.ts"
import { SharedRedis } from "../packages/core/src/SharedRedis.ts"
import * as SharedToolCache from "../packages/core/src/SharedToolCache.ts"
import { startRedis } from "../packages/core/src/testing/redisServer.ts"
import { ToolCache } from "../packages/core/src/ToolCache.ts"
import type { ListToolsResult } from "@modelcontextprotocol/client"
import { quantile, writeResults } from "./report.ts"

const BATCH = 100
const SAMPLES = Number(process.env.SAMPLES ?? 200)
const WARMUP = 20

interface Result {
  readonly name: string
  readonly median: number
  readonly p99: number
}

const bench = async (name: string, batch: () => Promise<unknown>): Promise<Result> => {
  for (let i = 0; i < WARMUP; i++) await batch()
  const samples: Array<number> = []
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = process.hrtime.bigint()
    await batch()
    samples.push(Number(process.hrtime.bigint() - t0) / BATCH / 1000)
  }
  return { name, median: quantile(samples, 0.5), p99: quantile(samples, 0.99) }
}

const loop = <A, E>(self: Effect.Effect<A, E>): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let i = 0; i < BATCH; i++) yield* Effect.exit(self)
  })

const main = async () => {
  const redis = await startRedis()
  const scope = Scope.makeUnsafe()
  try {
    const redisConfig = Effect.runSync(decodeRedis({ url: redis.url, keyPrefix: "bench:", retryInterval: 1_000, commandTimeout: 1_000 }, {}))
    const build = <A>(layer: Layer.Layer<A>) =>
      Effect.runPromise(Effect.flatMap(Layer.makeMemoMap, (memo) => Layer.buildWithMemoMap(layer, memo, scope)))
    const sharedLayer = SharedRedis.layer(redisConfig)
    const withShared = <A>(layer: Layer.Layer<A, never, any>) =>
      Layer.provideMerge(layer as Layer.Layer<A>, sharedLayer) as unknown as Layer.Layer<A | SharedRedis>
    const registryLayer = CircuitBreakerRegistry.layer() as Layer.Layer<CircuitBreakerRegistry>

    // In-process: the registry alone. Shared: the registry with SharedBreakers over a SharedRedis.
    const local = await build(registryLayer)
    const shared = await build(withShared(Layer.merge(SharedBreakers.layer, Layer.empty).pipe(Layer.provideMerge(registryLayer))))
    const peer = await build(withShared(Layer.merge(SharedBreakers.layer, Layer.empty).pipe(Layer.provideMerge(registryLayer))))
    const waitAvailable = async (ctx: Context.Context<SharedRedis>) => {
      const s = Context.get(ctx, SharedRedis)
      for (let i = 0; i < 1000 && !s.isAvailable(); i++) await new Promise((r) => setTimeout(r, 5))
      if (!s.isAvailable()) throw new Error("Redis not available")
    }
    await waitAvailable(shared as Context.Context<SharedRedis>)
    await waitAvailable(peer as Context.Context<SharedRedis>)
    // Commands through the peer's own client (the INFO itself is one command, subtracted below).
    const raw = Context.get(peer as Context.Context<SharedRedis>, SharedRedis).redis()!
    // Round trips = commands sent by clients (EVALSHA, GET, SET, ...), not the ones a Lua script runs inside
    // Redis: INFO commandstats counts both, so the script's inner commands are subtracted per EVALSHA.
    const commandStats = async (): Promise<Map<string, number>> => {
      const text = await Effect.runPromise(raw.send<string>("INFO", "commandstats"))
      return new Map([...text.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]))
    }

    const registryOf = (ctx: Context.Context<any>) => Context.get(ctx, CircuitBreakerRegistry)
    const closedLocal = loop(registryOf(local).execute("s", Effect.void))
    const closedShared = loop(registryOf(shared).execute("s", Effect.void))

    // Rate limits: a limit no call reaches, so every call is allowed and consumes a token.
    const rl = (algorithm: "fixed-window" | "token-bucket"): ServerLimitsConfig => ({
      rateLimit: { limit: 1e9, window: Duration.hours(1), algorithm, onExceeded: "fail" },
      maxConcurrentCalls: undefined
    })
    const limitsConfig = new Map<string, ServerLimitsConfig>()
    limitsConfig.set("fw", rl("fixed-window"))
    limitsConfig.set("tb", rl("token-bucket"))
    limitsConfig.set("bulk", { rateLimit: undefined, maxConcurrentCalls: 8 })
    const limitsLocal = await Effect.runPromise(Scope.provide(ServerLimits.make(limitsConfig, undefined), scope))
    const limitsShared = await Effect.runPromise(
      Scope.provide(ServerLimits.make(limitsConfig, Context.get(shared as Context.Context<SharedRedis>, SharedRedis)), scope)
    )
    const limited = (l: ServerLimits.ServerLimitsShape, server: string) => loop(l.run(server, Effect.void))

    // Tool lists: a local hit with the shared tier on (nothing goes to Redis) vs the plain cache, and a
    // local miss served from the shared tier (one GET) instead of a tools/list.
    const publicList = { tools: [{ name: "t", inputSchema: { type: "object" } }], cacheScope: "public" } as unknown as ListToolsResult
    const plainCache = await Effect.runPromise(Scope.provide(ToolCache.make({}), scope))
    const sharedCache = await Effect.runPromise(Scope.provide(
      Effect.flatMap(ToolCache.make({}), (inner) => SharedToolCache.wrap(inner, Context.get(shared as Context.Context<SharedRedis>, SharedRedis))),
      scope
    ))
    const fetch = Effect.succeed(publicList)
    await Effect.runPromise(plainCache.get("s", fetch))
    await Effect.runPromise(sharedCache.get("s", fetch))
    const hitPlain = loop(plainCache.get("s", fetch))
    const hitShared = loop(sharedCache.get("s", fetch))
    // A second replica's cache whose every lookup is a local miss (invalidated first), served by Redis.
    const peerCache = await Effect.runPromise(Scope.provide(
      Effect.flatMap(ToolCache.make({}), (inner) => SharedToolCache.wrap(inner, Context.get(peer as Context.Context<SharedRedis>, SharedRedis))),
      scope
    ))
    const missFromRedis = loop(Effect.andThen(peerCache.invalidate("s"), peerCache.get("s", Effect.die("not from the server"))))

    const cases: Array<[string, () => Promise<Result>]> = [
      ["breaker closed, in-process", () => bench("breaker closed, in-process", () => Effect.runPromise(closedLocal))],
      ["breaker closed, sharing on", () => bench("breaker closed, sharing on", () => Effect.runPromise(closedShared))],
      ["bulkhead (maxConcurrentCalls 8)", () => bench("bulkhead (maxConcurrentCalls 8)", () => Effect.runPromise(limited(limitsLocal, "bulk")))],
      ["rate limit fixed window, in-process", () => bench("rate limit fixed window, in-process", () => Effect.runPromise(limited(limitsLocal, "fw")))],
      ["rate limit fixed window, Redis", () => bench("rate limit fixed window, Redis", () => Effect.runPromise(limited(limitsShared, "fw")))],
      ["rate limit token bucket, in-process", () => bench("rate limit token bucket, in-process", () => Effect.runPromise(limited(limitsLocal, "tb")))],
      ["rate limit token bucket, Redis", () => bench("rate limit token bucket, Redis", () => Effect.runPromise(limited(limitsShared, "tb")))],
      ["tool list hit, in-process", () => bench("tool list hit, in-process", () => Effect.runPromise(hitPlain))],
      ["tool list hit, shared tier on", () => bench("tool list hit, shared tier on", () => Effect.runPromise(hitShared))],
      ["tool list local miss, served by Redis", () => bench("tool list local miss, served by Redis", () => Effect.runPromise(missFromRedis))]
    ]
    const best = new Map<string, Result>()
    for (let round = 0; round < 3; round++) {
      for (const [name, run] of cases) {
        const r = await run()
        const prev = best.get(name)
        if (prev === undefined || r.median < prev.median) best.set(name, r)
      }
    }

    // Round trips per call: EVALSHA calls + other client commands (heartbeat PINGs and INFO excluded; the
    // Lua scripts' inner GET/SET/PTTL are not round trips). Inner commands per script: fixed window 3
    // (GET, PTTL, SET), token bucket 4 (GET, GET, SET, SET).
    const N = 2_000
    const perCall = async (effect: Effect.Effect<void>, inner: number): Promise<number> => {
      const before = await commandStats()
      for (let i = 0; i < N / BATCH; i++) await Effect.runPromise(effect)
      const after = await commandStats()
      let trips = 0
      for (const [cmd, calls] of after) {
        if (cmd === "ping" || cmd === "info") continue
        const d = calls - (before.get(cmd) ?? 0)
        trips += d
      }
      const evalsha = (after.get("evalsha") ?? 0) - (before.get("evalsha") ?? 0)
      return (trips - evalsha * inner) / N
    }
    const commandsPerCall = new Map<string, number>([
      ["breaker closed, sharing on", await perCall(closedShared, 0)],
      ["rate limit fixed window, Redis", await perCall(limited(limitsShared, "fw"), 3)],
      ["rate limit token bucket, Redis", await perCall(limited(limitsShared, "tb"), 4)],
      ["tool list hit, shared tier on", await perCall(hitShared, 0)],
      ["tool list local miss, served by Redis", await perCall(missFromRedis, 0)]
    ])

    // Propagation of an opening: A opens, B follows.
    const delays: Array<number> = []
    const bRegistry = registryOf(peer)
    for (let i = 0; i < 30; i++) {
      const a = await Effect.runPromise(registryOf(shared).add("p", { consecutiveFailureThreshold: 1, waitDurationInOpen: 3_600_000 }))
      await Effect.runPromise(Effect.exit(a.execute(Effect.fail("boom"))))
      const start = performance.now()
      while ((await Effect.runPromise(Effect.flatMap(bRegistry.get("p"), (b) => b.state))) !== "ForcedOpen") {
        if (performance.now() - start > 5_000) throw new Error("B did not follow")
        await new Promise((r) => setImmediate(r))
      }
      delays.push(performance.now() - start)
      // Back to closed on both sides (manual resets are not shared) and the record removed.
      await Effect.runPromise(a.reset)
      await Effect.runPromise(raw.send("DEL", "bench:breaker:p"))
      await Effect.runPromise(Effect.flatMap(bRegistry.get("p"), (b) => b.reset))
      await new Promise((r) => setTimeout(r, 20))
    }

    const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2))
    const get = (name: string) => best.get(name)!
    const rows = cases.map(([name]) => {
      const r = get(name)
      const c = commandsPerCall.get(name)
      return `| ${name} | ${fmt(r.median)} | ${fmt(r.p99)} | ${c === undefined ? (name.includes("Redis") || name.includes("sharing") ? "–" : "0") : c.toFixed(3)} |`
    })
    const lines = [
      "## Scale-out on Redis (`bench/redis.bench.ts`)",
      "",
      "Per-call cost of each shared feature next to its in-process figure, against a real `redis-server` 7 on",
      "loopback (same machine). Round trips per call: client commands counted with `INFO commandstats` over 2,000\ncalls (heartbeat PINGs excluded; the commands a Lua script runs inside Redis are not round trips).",
      "",
      "| case | median µs/call | p99 µs/call | Redis round trips per call |",
      "|---|---:|---:|---:|",
      ...rows,
      "",
      `- Breaker with sharing on: ${fmt(get("breaker closed, sharing on").median)} µs vs ${fmt(get("breaker closed, in-process").median)} µs in-process per closed call (median, difference within noise), and ${commandsPerCall.get("breaker closed, sharing on")!.toFixed(3)} Redis round trips per call: only transitions go to Redis, and SharedBreakers listens through the registry's transitions-only subscription, so no per-call event is built.`,
      `- Rate limit through Redis: one \`EVALSHA\` per call (${commandsPerCall.get("rate limit fixed window, Redis")!.toFixed(3)} fixed window, ${commandsPerCall.get("rate limit token bucket, Redis")!.toFixed(3)} token bucket), ${fmt(get("rate limit fixed window, Redis").median)} µs vs ${fmt(get("rate limit fixed window, in-process").median)} µs in-process (fixed window).`,
      `- Tool lists: a local hit costs the same with the shared tier on (${fmt(get("tool list hit, shared tier on").median)} µs vs ${fmt(get("tool list hit, in-process").median)} µs, ${commandsPerCall.get("tool list hit, shared tier on")!.toFixed(3)} round trips); a local miss of a public list is served by Redis in ${fmt(get("tool list local miss, served by Redis").median)} µs (${commandsPerCall.get("tool list local miss, served by Redis")!.toFixed(3)} round trip, a GET) instead of a \`tools/list\` to the server.`,
      `- Breaker opening propagated to another replica (A opens → B ForcedOpen, pub/sub, same machine): median ${quantile(delays, 0.5).toFixed(2)} ms, p99 ${quantile(delays, 0.99).toFixed(2)} ms, max ${Math.max(...delays).toFixed(2)} ms over ${delays.length} openings (target ≤ 100 ms).`
    ]
    console.log(lines.join("\n"))
    if (process.argv.includes("--write")) writeResults("redis", lines)
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void)).catch(() => {})
    await redis.stop()
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
