/**
 * ConnectionPool against real demo-server children over stdio: a SIGKILLed child is replaced without the
 * caller seeing an error, the live children equal the pool's count, and none are left after close.
 */
import { assert, describe, it } from "@effect/vitest"
import { demoStdio } from "@keel/demo-server"
import { Effect, Exit, Fiber, Scope } from "effect"
import * as ConnectionPool from "./ConnectionPool.ts"
import type { ServerConfig } from "./ServerConfig.ts"
import { eventually, isRunning, pidsWithMarker, uniqueMarker } from "./testing/processes.ts"

const stdio = (marker: string): ServerConfig => ({ type: "stdio", ...demoStdio({ name: marker }) })

const textOf = (r: { content: ReadonlyArray<{ type: string; text?: string }> }) => r.content[0]?.text

describe("ConnectionPool with demo-server children", () => {
  it.live("a SIGKILLed pooled child is replaced: the next use gets a fresh session and sees no error", () =>
    Effect.gen(function*() {
      const marker = uniqueMarker("pool-kill")
      const pool = yield* ConnectionPool.make({ maxConnections: 2 })
      yield* pool.add("demo", stdio(marker))
      const pid1 = yield* pool.use("demo", (c) => Effect.succeed(c.pid!))
      assert.isTrue(isRunning(pid1))
      process.kill(pid1, "SIGKILL")
      yield* eventually(() => !isRunning(pid1), 5_000, "child gone")
      // The pool hears of the death from the session's close event (milliseconds after the kill). A call
      // racing that event fails with McpClosedError: the pool does not retry calls, which may not be
      // idempotent. After it, the dead session is never lent again.
      yield* eventually(() => Effect.runSync(pool.stats("demo")).destroyed.broken === 1, 5_000, "death noticed")
      const [pid2, text] = yield* pool.use("demo", (c) =>
        Effect.map(c.callTool("echo", { message: "after kill" }), (r) => [c.pid!, textOf(r)] as const))
      assert.notStrictEqual(pid2, pid1)
      assert.strictEqual(text, "after kill")
      const s = yield* pool.stats("demo")
      assert.strictEqual(s.destroyed.broken, 1)
      assert.strictEqual(s.total, 1)
      assert.deepStrictEqual(pidsWithMarker(marker), [pid2])
    }).pipe(Effect.scoped))

  it.live("a child killed while idle is noticed at once (no borrow needed); minIdle replaces it", () =>
    Effect.gen(function*() {
      const marker = uniqueMarker("pool-idle-kill")
      const pool = yield* ConnectionPool.make({ minIdle: 1 })
      yield* pool.add("demo", stdio(marker))
      yield* eventually(() => pidsWithMarker(marker).length === 1, 10_000, "warm child")
      const [pid1] = pidsWithMarker(marker)
      yield* eventually(() => Effect.runSync(pool.stats("demo")).idle === 1, 10_000, "idle session")
      process.kill(pid1!, "SIGKILL")
      yield* eventually(() => {
        const pids = pidsWithMarker(marker)
        return pids.length === 1 && pids[0] !== pid1 && Effect.runSync(pool.stats("demo")).idle === 1
      }, 10_000, "replacement warm")
      assert.strictEqual((yield* pool.stats("demo")).destroyed.broken, 1)
    }).pipe(Effect.scoped))

  it.live("live children equal the pool's count; close leaves none", () =>
    Effect.gen(function*() {
      const marker = uniqueMarker("pool-count")
      const scope = yield* Scope.make()
      const pool = yield* ConnectionPool.make({ maxConnections: 3, maxRequestsPerConnection: 1 }).pipe(Scope.provide(scope))
      yield* pool.add("demo", stdio(marker))
      // 3 concurrent slow calls need 3 sessions; a 4th caller waits for one of them
      const calls = yield* Effect.forEach([0, 1, 2, 3], () => Effect.forkChild(pool.use("demo", (c) => c.callTool("slow", { ms: 300 }))))
      yield* Fiber.joinAll(calls)
      const s = yield* pool.stats("demo")
      assert.strictEqual(s.total, 3)
      assert.strictEqual(s.created, 3)
      assert.strictEqual(s.waits >= 1, true)
      assert.strictEqual(pidsWithMarker(marker).length, 3)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(pidsWithMarker(marker).length, 0)
    }))

  it.live("remove ends that server's children, busy ones included", () =>
    Effect.gen(function*() {
      const a = uniqueMarker("pool-remove-a")
      const b = uniqueMarker("pool-remove-b")
      const pool = yield* ConnectionPool.make({ maxRequestsPerConnection: 1 })
      yield* pool.add("a", stdio(a))
      yield* pool.add("b", stdio(b))
      yield* pool.use("b", (c) => c.ping())
      const busy = yield* Effect.forkChild(Effect.exit(pool.use("a", (c) => c.callTool("slow", { ms: 20_000 }))))
      yield* eventually(() => Effect.runSync(pool.stats("a")).leases === 1, 10_000, "a busy")
      yield* pool.remove("a")
      assert.strictEqual(pidsWithMarker(a).length, 0)
      assert.strictEqual(pidsWithMarker(b).length, 1)
      const exit = yield* Fiber.join(busy)
      assert.isTrue(Exit.isFailure(exit))
    }).pipe(Effect.scoped))

  it.live("seed defect: concurrent first acquires spawn at most maxConnections children", () =>
    Effect.gen(function*() {
      const marker = uniqueMarker("pool-race")
      const pool = yield* ConnectionPool.make({ maxConnections: 2, maxRequestsPerConnection: 1 })
      yield* pool.add("demo", stdio(marker))
      let peak = 0
      const fibers = []
      for (let i = 0; i < 20; i++) {
        fibers.push(yield* Effect.forkChild(pool.use("demo", (c) =>
          Effect.andThen(
            Effect.sync(() => {
              peak = Math.max(peak, pidsWithMarker(marker).length)
            }),
            c.callTool("echo", { message: String(i) })
          ))))
      }
      yield* Fiber.joinAll(fibers)
      assert.isAtMost(peak, 2)
      assert.isAtMost((yield* pool.stats("demo")).created, 2)
      // A session may still be starting once every borrower is done: once none is, the OS and the pool agree.
      yield* eventually(() => {
        const s = Effect.runSync(pool.stats("demo"))
        return s.starting === 0 && pidsWithMarker(marker).length === s.total
      }, 5_000, "live children equal the pool's count")
      assert.isAtMost((yield* pool.stats("demo")).created, 2)
    }).pipe(Effect.scoped))

  it.live("invalidating busy sessions under load never takes the live children past maxConnections", () =>
    Effect.gen(function*() {
      const marker = uniqueMarker("pool-invalidate-cap")
      const pool = yield* ConnectionPool.make({ maxConnections: 2, maxRequestsPerConnection: 1, pingAfterIdle: null })
      yield* pool.add("demo", stdio(marker))
      let peak = 0
      let sampling = true
      const sampler = yield* Effect.forkChild(Effect.whileLoop({
        while: () => sampling,
        body: () =>
          Effect.andThen(
            Effect.sync(() => {
              peak = Math.max(peak, pidsWithMarker(marker).length)
            }),
            Effect.sleep(5)
          ),
        step: () => {}
      }))
      // 8 calls of 150 ms through 2 sessions; each call invalidates its own session while still using it,
      // so Effect's Pool wants a replacement while the old child is busy
      const calls = yield* Effect.forEach(Array.from({ length: 8 }), () =>
        Effect.forkChild(pool.use("demo", (c) =>
          Effect.andThen(pool.invalidate("demo", c), c.callTool("slow", { ms: 150 })))))
      yield* Fiber.joinAll(calls)
      sampling = false
      yield* Fiber.join(sampler)
      const s = yield* pool.stats("demo")
      assert.strictEqual(s.destroyed.invalidated, 8)
      assert.isAtLeast(s.created, 8)
      assert.isAtLeast(peak, 1)
      assert.isAtMost(peak, 2)
    }).pipe(Effect.scoped))
})
