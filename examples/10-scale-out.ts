/**
 * Scale-out on Redis: a local `redis-server` (started here on a free loopback port, its own temp dir, no
 * persistence; stopped at the end) and two replicas, A and B, each a whole Keel graph with its own
 * connection pool, breakers, cache and Redis client (`ScaleOut.layerConfig` with a `keel.redis` section),
 * sharing one demo server over HTTP. Everything printed is measured on this run:
 *
 * - **shared breaker**: A's breaker for `demo` opens on failures; B holds its own open (it follows A)
 *   a few milliseconds later, rejects calls without sending them, and never probes; A's one probe closes
 *   both;
 * - **shared rate limit**: `limited` allows 5 calls a minute across replicas: 10 calls alternating A and B
 *   give 5 answers and 5 `RateLimitedError`s with `retryAfter`; the demo server counts 5.
 *
 * Needs Debian's `redis-server` (`apt-get install -y redis-server`; `npm test` installs it when missing).
 * Run: `npm run example -- 10`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { CircuitBreakerRegistry } from "@keel/core/CircuitBreaker"
import { McpClientManager } from "@keel/core/McpClientManager"
import * as ScaleOut from "@keel/core/ScaleOut"
import { SharedRedis } from "@keel/core/SharedRedis"
import { startRedis } from "@keel/core/testing/redisServer"
import { spawnDemoHttp } from "@keel/demo-server"
import { Console, Context, Duration, Effect, Layer, Option, Result } from "effect"

const waitFor = (what: string, check: Effect.Effect<boolean>, within = 10_000) =>
  Effect.gen(function*() {
    const start = performance.now()
    while (!(yield* check)) {
      if (performance.now() - start > within) return yield* Effect.die(new Error(`${what} not reached within ${within} ms`))
      yield* Effect.sleep(1)
    }
    return performance.now() - start
  })

const program = Effect.gen(function*() {
  const redis = yield* Effect.acquireRelease(Effect.promise(() => startRedis()), (r) => Effect.promise(() => r.stop()))
  const demo = yield* Effect.acquireRelease(Effect.promise(() => spawnDemoHttp()), (d) => Effect.promise(() => d.stop()))
  yield* Console.log(`redis-server on ${redis.url} (pid ${redis.pid()}), demo server on ${demo.url}`)

  const config = {
    mcpServers: {
      demo: {
        url: demo.url,
        keel: {
          breaker: {
            consecutiveFailureThreshold: 0, failureRateThreshold: 0.5, minimumNumberOfCalls: 2, slidingWindowSize: 2,
            waitDurationInOpen: 500, waitDurationInOpenBackoff: "fixed", permittedCallsInHalfOpen: 1, successThresholdToClose: 1
          }
        }
      },
      limited: { url: demo.url, keel: { rateLimit: { limit: 5, window: 60_000, onExceeded: "fail" } } },
      stats: { url: demo.url }
    },
    keel: { defaults: { cache: { cacheScope: "public" } }, redis: { url: redis.url, keyPrefix: "example10:", retryInterval: 200 } }
  }

  // Two replicas in one process, each built from its own memo map: nothing is shared but Redis and the server.
  const replica = Effect.gen(function*() {
    const memo = yield* Layer.makeMemoMap
    return yield* Layer.buildWithMemoMap(ScaleOut.layerConfig(config), memo, yield* Effect.scope)
  })
  const A = yield* replica
  const B = yield* replica
  const on = <I, S>(ctx: Context.Context<any>, tag: Context.Key<I, S>): S => Context.get(ctx as Context.Context<I>, tag)
  const mcpA = on(A, McpClientManager)
  const mcpB = on(B, McpClientManager)
  const available = (ctx: Context.Context<any>) =>
    Effect.sync(() => Option.match(Context.getOption(ctx, SharedRedis), { onNone: () => false, onSome: (s) => s.isAvailable() }))
  const ms = yield* waitFor("both replicas on Redis", Effect.zipWith(available(A), available(B), (a, b) => a && b))
  yield* Console.log(`replicas A and B connected to Redis (${ms.toFixed(0)} ms)`)

  const served = (tool: string) =>
    Effect.map(mcpA.callTool("stats", "stats"), (r) => {
      const first = r.content[0]
      return (JSON.parse(first?.type === "text" ? first.text : "{}") as { calls: Record<string, number> }).calls[tool] ?? 0
    })
  const stateOf = (ctx: Context.Context<any>, server: string) =>
    Effect.flatMap(on(ctx, CircuitBreakerRegistry).get(server), (b) => b.state)

  // --- shared breaker ---------------------------------------------------------------------------------
  yield* Console.log("\nshared breaker (demo: opens at 50 % failures over the last 2 calls, 500 ms open)")
  for (const mcp of [mcpA, mcpB]) yield* mcp.callTool("demo", "echo", { message: "warm" })
  const echoBefore = yield* served("echo")
  let openedAt = 0
  while ((yield* stateOf(A, "demo")) !== "Open") {
    const e = yield* Effect.flip(mcpA.callTool("demo", "fail", { kind: "protocol" }))
    openedAt = performance.now()
    yield* Console.log(`  A: fail → ${e._tag}`)
  }
  yield* Console.log(`  A's breaker: ${yield* stateOf(A, "demo")}`)
  const followMs = yield* waitFor("B follows A", Effect.map(stateOf(B, "demo"), (s) => s === "ForcedOpen"))
  yield* Console.log(`  B's breaker: ForcedOpen ${(performance.now() - openedAt).toFixed(1)} ms after A's last failure returned (polled for ${followMs.toFixed(1)} ms)`)
  for (let i = 0; i < 3; i++) {
    const e = yield* Effect.flip(mcpB.callTool("demo", "echo", { message: "b" }))
    yield* Console.log(`  B: echo → ${e._tag}${e._tag === "CircuitOpenError" ? " (not sent)" : ""}`)
  }
  yield* Effect.sleep(Duration.millis(600))
  yield* Console.log(`  after A's 500 ms wait: A ${yield* stateOf(A, "demo")}, B ${yield* stateOf(B, "demo")} (B does not probe)`)
  const probe = yield* Effect.result(mcpA.callTool("demo", "echo", { message: "probe" }))
  yield* Console.log(`  A: probe → ${Result.isSuccess(probe) ? "ok" : probe.failure._tag}; A ${yield* stateOf(A, "demo")}`)
  const closeMs = yield* waitFor("B closes", Effect.map(stateOf(B, "demo"), (s) => s === "Closed"))
  yield* Console.log(`  B's breaker: Closed ${closeMs.toFixed(1)} ms later`)
  yield* mcpB.callTool("demo", "echo", { message: "b again" })
  yield* Console.log(`  echo calls the server received meanwhile: ${(yield* served("echo")) - echoBefore} (A's probe, then B's call after the close)`)

  // --- shared rate limit ------------------------------------------------------------------------------
  yield* Console.log("\nshared rate limit (limited: 5 calls a minute, across replicas)")
  const addBefore = yield* served("add")
  let allowed = 0
  for (let i = 0; i < 10; i++) {
    const [name, mcp] = i % 2 === 0 ? ["A", mcpA] as const : ["B", mcpB] as const
    // The manager applies the rate limit itself (ScaleOut's layers give it the ServerLimits service).
    const r = yield* Effect.result(mcp.callTool("limited", "add", { a: i, b: 1 }))
    if (Result.isSuccess(r)) allowed++
    const f = Result.isFailure(r) ? r.failure : undefined
    yield* Console.log(`  ${name}: add → ${f === undefined ? "ok" : f._tag === "RateLimitedError" ? `RateLimitedError (retry after ${(Duration.toMillis(f.retryAfter) / 1000).toFixed(1)} s)` : f._tag}`)
  }
  yield* Console.log(`  allowed ${allowed} of 10; add calls the server received: ${(yield* served("add")) - addBefore}`)
})

// A failure (redis-server missing, a step not reached) is reported by runMain with exit code 1.
NodeRuntime.runMain(Effect.scoped(program))
