/**
 * The connection pool (tutorial Part 1): a new connection per call vs a warm pooled session, measured here;
 * what `stats` reports (the seed's `GetMetrics()`); and a pooled child killed for real, replaced without the
 * caller seeing an error. Run: `npm run example -- 01`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { ConnectionPool, McpClient } from "@keel/core"
import { demoStdio } from "@keel/demo-server"
import { Console, Effect } from "effect"

const smoke = process.env.KEEL_EXAMPLE_SMOKE === "1"
const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const config = { type: "stdio" as const, ...demoStdio() }

const program = Effect.gen(function*() {
  // Seed: MaxOpenConns 10 → maxConnections, MaxIdleConns → maxIdle, ConnMaxLifetime → maxLifetime,
  // ConnMaxIdleTime → idleTimeout. Keel adds minIdle, acquireTimeout, maxRequestsPerConnection, ...
  const pool = yield* ConnectionPool.make({ maxConnections: 4, minIdle: 1, maxLifetime: "5 minutes", idleTimeout: "2 minutes" })
  yield* pool.add("demo", config)

  // 1. Without a pool: spawn + initialize + call + close, every time.
  const fresh: Array<number> = []
  for (let i = 0; i < (smoke ? 2 : 5); i++) {
    const t = performance.now()
    yield* Effect.scoped(Effect.flatMap(McpClient.connect("demo", config), (c) => c.callTool("add", { a: i, b: 1 })))
    fresh.push(performance.now() - t)
  }
  yield* Console.log(`new connection per call: median ${median(fresh).toFixed(1)} ms over ${fresh.length} calls`)

  // 2. With the pool: borrow a warm session (Acquire), call, give it back (Release) when the scope ends.
  for (let i = 0; i < 50; i++) yield* pool.use("demo", (c) => c.callTool("add", { a: i, b: 1 }))
  const pooled: Array<number> = []
  for (let i = 0; i < (smoke ? 200 : 1000); i++) {
    const t = performance.now()
    yield* pool.use("demo", (c) => c.callTool("add", { a: i, b: 1 }))
    pooled.push(performance.now() - t)
  }
  yield* Console.log(`pooled session:          median ${median(pooled).toFixed(3)} ms over ${pooled.length} calls`)
  yield* Console.log(`→ the pool is ${(median(fresh) / median(pooled)).toFixed(0)}x faster per call (ratio of the medians)`)

  // 3. The borrow itself, without the call.
  const borrows: Array<number> = []
  for (let i = 0; i < 10_000; i++) {
    const t = performance.now()
    yield* pool.use("demo", () => Effect.void)
    borrows.push((performance.now() - t) * 1000)
  }
  yield* Console.log(`acquire + release alone: median ${median(borrows).toFixed(2)} µs`)
  yield* Console.log(`→ getting a session: ${((median(fresh) * 1000) / median(borrows)).toFixed(0)}x faster from the pool than spawning one`)

  // 4. 64 concurrent callers share at most 4 sessions (MCP multiplexes requests on a session).
  const t = performance.now()
  yield* Effect.forEach(Array.from({ length: 640 }, (_, i) => i), (i) => pool.use("demo", (c) => c.callTool("add", { a: i, b: 1 })), { concurrency: 64, discard: true })
  yield* Console.log(`640 calls from 64 concurrent callers in ${(performance.now() - t).toFixed(0)} ms`)

  // 5. GetMetrics()
  const s = yield* pool.stats("demo")
  yield* Console.log(`stats: total ${s.total}, active ${s.active}, idle ${s.idle}, pending ${s.pending}, created ${s.created}, acquired ${s.acquired}, waits ${s.waits}, timeouts ${s.timeouts}`)

  // 6. A pooled child dies (SIGKILL): the next borrow gets a fresh session, the caller sees no error.
  const pid = yield* pool.use("demo", (c) => Effect.succeed(c.pid!))
  process.kill(pid, "SIGKILL")
  yield* Effect.sleep("100 millis")
  const after = yield* pool.use("demo", (c) => Effect.map(c.callTool("echo", { message: "still here" }), (r) => ({ pid: c.pid, r })))
  const text = after.r.content[0]?.type === "text" ? after.r.content[0].text : ""
  yield* Console.log(`killed pid ${pid}; next call answered "${text}" from pid ${after.pid}`)
  const end = yield* pool.stats("demo")
  yield* Console.log(`destroyed by reason: ${JSON.stringify(end.destroyed)}`)
})

NodeRuntime.runMain(Effect.scoped(program))
