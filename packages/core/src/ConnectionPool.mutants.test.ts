/**
 * Tests that pin `ConnectionPool.ts`'s hot path for mutation testing (`npm run mutation`, see MUTATION.md):
 * the errors a borrower sees (unknown server, removed server, closed pool, a failed connect) and the lease
 * counters of `stats`. Fake sessions, no processes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as ConnectionPool from "./ConnectionPool.ts"
import type { McpConnection } from "./McpClient.ts"
import { McpConnectError } from "./McpError.ts"
import type { ServerConfig } from "./ServerConfig.ts"

const cfg: ServerConfig = { type: "stdio", command: "fake" }

const fakes = () => {
  const state = { created: 0, failNext: 0, failWith: undefined as unknown }
  const connect: ConnectionPool.Connect = (name) =>
    Effect.acquireRelease(
      Effect.suspend(() => {
        if (state.failWith !== undefined) return Effect.die(state.failWith)
        if (state.failNext > 0) {
          state.failNext--
          return Effect.fail(new McpConnectError({ server: name, message: `fake connect to ${name} failed`, stderrTail: "" }))
        }
        const id = ++state.created
        let open = true
        return Effect.succeed(
          { id, name, config: cfg, pid: undefined, isOpen: () => open, closed: Effect.never, ping: () => Effect.void, close: () => Effect.sync(() => (open = false)) } as unknown as McpConnection
        )
      }),
      () => Effect.void
    )
  return { state, connect }
}

describe("ConnectionPool (mutation pins)", () => {
  it.effect("an unknown server fails with the known servers listed, or (none)", () =>
    Effect.gen(function*() {
      const { connect } = fakes()
      const pool = yield* ConnectionPool.make({ pingAfterIdle: null }, { connect })
      const none = yield* Effect.flip(pool.use("x", () => Effect.void))
      assert.strictEqual(none._tag, "UnknownServerError")
      assert.strictEqual(none.message, 'unknown MCP server "x"; known servers: (none)')
      yield* pool.add("a", cfg)
      yield* pool.add("b", cfg)
      const two = yield* Effect.flip(Effect.scoped(pool.get("x")))
      assert.strictEqual(two.message, 'unknown MCP server "x"; known servers: a, b')
      assert.deepStrictEqual((two as unknown as { available: Array<string> }).available, ["a", "b"])
    }))

  it.effect("a connect failure reaches the borrower as McpConnectError; a defect is wrapped in one", () =>
    Effect.gen(function*() {
      const { connect, state } = fakes()
      const pool = yield* ConnectionPool.make({ pingAfterIdle: null }, { connect })
      yield* pool.add("a", cfg)
      state.failNext = 1
      const failed = yield* Effect.flip(pool.use("a", () => Effect.void))
      assert.strictEqual(failed._tag, "McpConnectError")
      assert.strictEqual(failed.message, "fake connect to a failed")
      state.failWith = new Error("spawn ENOENT")
      const died = yield* Effect.flip(pool.use("a", () => Effect.void))
      assert.strictEqual(died._tag, "McpConnectError")
      assert.match(died.message, /^could not connect to a: .*spawn ENOENT/)
      state.failWith = undefined
      yield* pool.use("a", () => Effect.void)
      assert.strictEqual((yield* pool.stats("a")).connectFailures >= 2, true)
    }))

  it.effect("stats: acquired, released and leases move with each lease", () =>
    Effect.gen(function*() {
      const { connect } = fakes()
      const pool = yield* ConnectionPool.make({ pingAfterIdle: null }, { connect })
      yield* pool.add("a", cfg)
      const scope = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(scope))
      yield* pool.get("a").pipe(Scope.provide(scope))
      let s = yield* pool.stats("a")
      assert.deepStrictEqual([s.acquired, s.released, s.leases], [2, 0, 2])
      yield* Scope.close(scope, Exit.void)
      yield* pool.use("a", () => Effect.void)
      s = yield* pool.stats("a")
      assert.deepStrictEqual([s.acquired, s.released, s.leases, s.active], [3, 3, 0, 0])
      assert.strictEqual(s.idle, s.total)
    }))

  it.effect("a removed server, and a closed pool, fail borrowers with PoolClosedError naming the reason", () =>
    Effect.gen(function*() {
      const { connect } = fakes()
      const scope = yield* Scope.make()
      const pool = yield* ConnectionPool.make({ pingAfterIdle: null }, { connect }).pipe(Scope.provide(scope))
      yield* pool.add("a", cfg)
      const held = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(held))
      yield* pool.remove("a")
      const removed = yield* Effect.flip(pool.use("a", () => Effect.void))
      assert.strictEqual(removed._tag, "UnknownServerError")
      yield* Scope.close(held, Exit.void)
      yield* pool.add("b", cfg)
      yield* Scope.close(scope, Exit.void)
      const closed = yield* Effect.flip(pool.use("b", () => Effect.void))
      assert.include(["PoolClosedError", "UnknownServerError"], closed._tag)
    }))
})
