/**
 * Tests that pin `ConnectionPool.ts`'s hot path for mutation testing (`npm run mutation`, see MUTATION.md):
 * the errors a borrower sees (unknown server, removed server, closed pool, a failed connect) and the lease
 * counters of `stats`. Fake sessions, no processes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Logger, Metric, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
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

// ---------------------------------------------------------------------------------------------------------
// tryLeaseUnsafe / SyncLease (the manager's synchronous borrow), with fakes that can break, crash and ping
// ---------------------------------------------------------------------------------------------------------

interface Fake {
  readonly id: number
  readonly name: string
  open: boolean
  readonly closedSignal: Deferred.Deferred<void>
}

/**
 * Fake sessions by id: `open` is what `isOpen()` answers, `crash` also announces the close. Knobs: `failNext`
 * connects fail, `connectMs` (per server) makes a connect sleep, `ping` replaces the ping, `closeGate` makes
 * a session's close wait. `connecting` / `peakConnecting` count connects in flight.
 */
const richFakes = () => {
  const state = {
    created: 0,
    closed: 0,
    pings: 0,
    failPing: false,
    failNext: 0,
    connecting: 0,
    peakConnecting: 0,
    connectMs: {} as Record<string, number>,
    pingOptions: [] as Array<unknown>,
    ping: undefined as Effect.Effect<void, McpConnectError> | undefined,
    closeGate: undefined as Deferred.Deferred<void> | undefined,
    live: new Map<number, Fake>()
  }
  const connect: ConnectionPool.Connect = (name) =>
    Effect.acquireRelease(
      Effect.gen(function*() {
        state.connecting++
        state.peakConnecting = Math.max(state.peakConnecting, state.connecting)
        try {
          const ms = state.connectMs[name]
          if (ms !== undefined) yield* Effect.sleep(ms)
          if (state.failNext > 0) {
            state.failNext--
            return yield* new McpConnectError({ server: name, message: `fake connect to ${name} failed`, stderrTail: "" })
          }
        } finally {
          state.connecting--
        }
        const id = ++state.created
        const fake: Fake = { id, name, open: true, closedSignal: Deferred.makeUnsafe<void>() }
        state.live.set(id, fake)
        return {
          id,
          name,
          config: cfg,
          pid: undefined,
          isOpen: () => fake.open,
          closed: Deferred.await(fake.closedSignal),
          ping: (options: unknown) =>
            Effect.suspend(() => {
              state.pings++
              state.pingOptions.push(options)
              if (state.ping !== undefined) return state.ping
              return state.failPing || !fake.open ? Effect.fail(new McpConnectError({ server: name, message: "ping failed", stderrTail: "" })) : Effect.void
            }),
          close: () => Effect.void
        } as unknown as McpConnection
      }),
      (conn) =>
        Effect.gen(function*() {
          if (state.closeGate !== undefined) yield* Deferred.await(state.closeGate)
          const id = idOf(conn)
          const fake = state.live.get(id)
          if (fake !== undefined) fake.open = false
          if (state.live.delete(id)) state.closed++
        })
    )
  const crash = (id: number) => {
    const fake = state.live.get(id)!
    fake.open = false
    Deferred.doneUnsafe(fake.closedSignal, Exit.void)
  }
  /** Only `isOpen()` turns false (an HTTP session that broke without a close event). */
  const breakQuietly = (id: number) => {
    state.live.get(id)!.open = false
  }
  return { state, connect, crash, breakQuietly }
}

const idOf = (c: McpConnection) => (c as unknown as { id: number }).id

const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

/** A pool of rich fakes (no ping, no lifetime, no idle timeout unless given) in the test's scope. */
const syncSetup = (config: ConnectionPool.ConnectionPoolConfigInput = {}) =>
  Effect.gen(function*() {
    const fakes = richFakes()
    const pool = yield* ConnectionPool.make(
      { pingAfterIdle: null, maxLifetime: 0, idleTimeout: 0, ...config },
      { connect: fakes.connect }
    )
    return { pool, ...fakes, tryLease: (server: string) => pool.tryLeaseUnsafe!(server) }
  })

/** Releases a sync lease, running the effect it hands back (if any); returns whether it handed one back. */
const releaseSync = (lease: ConnectionPool.SyncLease) =>
  Effect.suspend(() => {
    const more = lease.release()
    return more === undefined ? Effect.succeed(false) : Effect.as(more, true)
  })

describe("ConnectionPool.tryLeaseUnsafe (mutation pins)", () => {
  it.effect("unknown, cold and closed servers lend nothing; a warm one lends its session and counts the lease", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { pool, state, tryLease } = yield* syncSetup().pipe(Scope.provide(scope))
      assert.isUndefined(tryLease("x"))
      yield* pool.add("a", cfg)
      assert.isUndefined(tryLease("a")) // no session yet: the caller takes use, which connects
      assert.strictEqual(state.created, 0)
      const id = yield* pool.use("a", (c) => Effect.succeed(idOf(c)))
      const lease = tryLease("a")!
      assert.isDefined(lease)
      assert.strictEqual(idOf(lease.connection), id)
      let s = yield* pool.stats("a")
      assert.deepStrictEqual([s.acquired, s.leases, s.active, s.idle, s.released], [2, 1, 1, 0, 1])
      assert.isFalse(yield* releaseSync(lease)) // nothing to wake: given back synchronously
      s = yield* pool.stats("a")
      assert.deepStrictEqual([s.acquired, s.leases, s.active, s.idle, s.released], [2, 0, 0, 1, 2])
      assert.strictEqual(state.created, 1)
      yield* Scope.close(scope, Exit.void)
      assert.isUndefined(tryLease("a")) // the pool is closed
      assert.strictEqual(state.closed, 1)
    }))

  it.effect("a session is lent to maxRequestsPerConnection borrowers at once; a returned slot is lent again", () =>
    Effect.gen(function*() {
      // minIdle = maxConnections: a fixed-size Pool (no growth check), one session
      const { pool, state, tryLease } = yield* syncSetup({ maxConnections: 1, minIdle: 1, maxRequestsPerConnection: 2 })
      yield* pool.add("a", cfg)
      yield* settle
      const first = tryLease("a")!
      const second = tryLease("a")!
      assert.strictEqual(idOf(first.connection), idOf(second.connection))
      assert.isUndefined(tryLease("a")) // saturated: off the available list
      assert.strictEqual((yield* pool.stats("a")).leases, 2)
      assert.isFalse(yield* releaseSync(first))
      const third = tryLease("a")! // back on the list
      assert.isDefined(third)
      assert.isUndefined(tryLease("a"))
      yield* releaseSync(second)
      yield* releaseSync(third)
      // the Pool's own paths agree with the books: two concurrent uses share the session
      const ids = yield* Effect.all([pool.use("a", (c) => Effect.succeed(idOf(c))), pool.use("a", (c) => Effect.succeed(idOf(c)))], { concurrency: 2 })
      assert.deepStrictEqual(ids, [1, 1])
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.leases, s.acquired, s.released, state.created], [0, 5, 5, 1])
    }))

  it.effect("release wakes a waiting borrower through the Pool (an effect to run)", () =>
    Effect.gen(function*() {
      const { pool, tryLease } = yield* syncSetup({ maxConnections: 1, minIdle: 1, maxRequestsPerConnection: 1 })
      yield* pool.add("a", cfg)
      yield* settle
      const lease = tryLease("a")!
      const waiter = yield* Effect.forkChild(pool.use("a", (c) => Effect.succeed(idOf(c))))
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).pending, 1)
      assert.isUndefined(tryLease("a")) // a waiter is queued: never overtaken
      assert.isTrue(yield* releaseSync(lease))
      // The session is back on the list, but the woken waiter has not taken it yet: still not lent past it.
      assert.isUndefined(tryLease("a"))
      assert.strictEqual(yield* Fiber.join(waiter), 1)
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.leases, s.pending, s.acquired, s.released], [0, 0, 2, 2])
    }))

  it.effect("release of an invalidated session closes it through the Pool", () =>
    Effect.gen(function*() {
      const { pool, state, tryLease } = yield* syncSetup({ maxConnections: 2, maxRequestsPerConnection: 1 })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void)
      const lease = tryLease("a")!
      yield* pool.invalidate("a", lease.connection)
      assert.strictEqual(state.live.size >= 1, true)
      assert.isTrue(state.live.has(idOf(lease.connection))) // still lent: not closed yet
      assert.isTrue(yield* releaseSync(lease))
      yield* settle
      assert.isFalse(state.live.has(idOf(lease.connection)))
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.leases, s.destroyed.invalidated], [0, 1])
    }))

  it.effect("least-loaded moves the tail to the head: the list's tail follows, so a replacement joins the list", () =>
    Effect.gen(function*() {
      const { pool, state, tryLease } = yield* syncSetup({ maxConnections: 2, minIdle: 2, maxRequestsPerConnection: 2 })
      yield* pool.add("a", cfg)
      yield* settle
      const first = tryLease("a")! // the head, now with one borrower
      const second = tryLease("a")! // the other (the tail, no borrower) moves to the head
      assert.notStrictEqual(idOf(second.connection), idOf(first.connection))
      assert.isFalse(yield* releaseSync(second))
      yield* pool.invalidate("a", second.connection) // idle: closed at once, replaced at the tail
      yield* settle
      assert.strictEqual(state.created, 3)
      const third = tryLease("a")! // least-loaded: the new session (0 borrowers), not the head (1)
      assert.strictEqual(idOf(third.connection), 3)
      yield* releaseSync(third)
      yield* releaseSync(first)
    }))

  it.effect("a Pool that wants to grow (a lent session invalidated) lends nothing synchronously", () =>
    Effect.gen(function*() {
      // not fixed (minIdle 0 < maxConnections 3), two slots per session
      const { pool, state, tryLease } = yield* syncSetup({ maxConnections: 3, maxRequestsPerConnection: 2 })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void)
      const one = tryLease("a")!
      const two = tryLease("a")!
      assert.strictEqual(idOf(one.connection), idOf(two.connection))
      yield* pool.invalidate("a", one.connection) // still lent twice: the Pool starts a replacement
      yield* settle
      assert.strictEqual(state.created, 2)
      // The replacement is idle, but the two leases of the old session still count as usage: one more
      // borrower makes the Pool's target 2 sessions, so Pool.use would grow; the sync borrow declines.
      assert.isUndefined(tryLease("a"))
      const id = yield* pool.use("a", (c) => Effect.succeed(idOf(c)))
      assert.include([2, 3], id)
      assert.isTrue(yield* releaseSync(one))
      assert.isTrue(yield* releaseSync(two))
      yield* settle
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.leases, s.destroyed.invalidated], [0, 1])
      assert.isDefined(tryLease("a")) // usage back to 0: lends again
    }))

  it.effect("sync returns give the Pool's usage back: a growable Pool keeps lending synchronously", () =>
    Effect.gen(function*() {
      // not fixed (minIdle 0 < 3), one slot per session: any usage left behind would make the Pool want to grow
      const { pool, tryLease } = yield* syncSetup({ maxConnections: 3, maxRequestsPerConnection: 1 })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void)
      for (let i = 0; i < 3; i++) {
        const lease = tryLease("a")
        assert.isDefined(lease, `borrow ${i}`)
        assert.isFalse(yield* releaseSync(lease!))
      }
      assert.strictEqual((yield* pool.stats("a")).total, 1)
    }))

  it.effect("maxIdle applies to sync returns; a return while a borrower waits goes to the borrower", () =>
    Effect.gen(function*() {
      const three = yield* syncSetup({ maxConnections: 3, minIdle: 3, maxIdle: 1, maxRequestsPerConnection: 1 })
      yield* three.pool.add("a", cfg)
      yield* settle
      const lease = three.tryLease("a")!
      assert.isFalse(yield* releaseSync(lease)) // idle 3 > maxIdle 1: this one goes
      yield* settle
      assert.strictEqual((yield* three.pool.stats("a")).destroyed.excess, 1)
      assert.isFalse(three.state.live.has(idOf(lease.connection)))
      // maxIdle 0: a session returned through the Pool while a borrower waits is handed to the waiter (no new
      // session, no new child); the waiter's own return, with nobody waiting, is excess
      const one = yield* syncSetup({ maxConnections: 1, minIdle: 1, maxIdle: 0, maxRequestsPerConnection: 1 })
      yield* one.pool.add("b", cfg)
      yield* settle
      const held = one.tryLease("b")!
      const waiter = yield* Effect.forkChild(one.pool.use("b", (c) => Effect.succeed(idOf(c))))
      yield* settle
      assert.isTrue(yield* releaseSync(held))
      const got = yield* Fiber.join(waiter)
      assert.strictEqual(got, idOf(held.connection))
      assert.strictEqual((yield* one.pool.stats("b")).destroyed.excess, 1)
    }))

  it.effect("a slow-path borrow that arrives while a woken waiter has yet to take its session counts as a wait", () =>
    Effect.gen(function*() {
      // fixed (minIdle 1 = maxConnections 1), one slot; leak detection on: every get takes the slow path
      const { pool, tryLease } = yield* syncSetup({ maxConnections: 1, minIdle: 1, maxRequestsPerConnection: 1, leakDetectionThreshold: "1 hour" })
      yield* pool.add("a", cfg)
      yield* settle
      const lease = tryLease("a")!
      const waiter = yield* Effect.forkChild(pool.use("a", (c) => Effect.succeed(idOf(c))))
      yield* settle
      assert.isTrue(yield* releaseSync(lease)) // the session is available again, the waiter woken but not run
      // This borrow finds a session available but a waiter ahead of it: it will wait (queued behind it).
      const id = yield* Effect.scoped(Effect.map(pool.get("a"), idOf))
      assert.strictEqual(yield* Fiber.join(waiter), 1)
      assert.strictEqual(id, 1)
      assert.strictEqual((yield* pool.stats("a")).waits, 2)
    }))

  it.effect("a session returned idle restarts its idle clock (the ping-after-idle check reads it)", () =>
    Effect.gen(function*() {
      const { pool, state, tryLease } = yield* syncSetup({ pingAfterIdle: "10 seconds" })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void) // idle since t = 0
      yield* TestClock.adjust("9 seconds")
      const lease = tryLease("a")!
      yield* TestClock.adjust("6 seconds")
      yield* releaseSync(lease) // idle since t = 15 s
      yield* TestClock.adjust("5 seconds") // t = 20 s: idle 5 s, no ping due
      const again = tryLease("a")
      assert.isDefined(again)
      yield* releaseSync(again!)
      yield* TestClock.adjust("10 seconds") // idle 10 s: due for a ping, so not lent synchronously
      assert.isUndefined(tryLease("a"))
      yield* pool.use("a", () => Effect.void)
      assert.strictEqual(state.pings, 1)
    }))
})

describe("ConnectionPool: use's warm path with maxIdle (mutation pins)", () => {
  it.effect("a session returned by a warm use beyond maxIdle is closed as excess; within it, kept", () =>
    Effect.gen(function*() {
      // minIdle 3 starts three idle sessions; maxIdle 1 applies when one is returned
      const { pool, state } = yield* syncSetup({ maxConnections: 3, minIdle: 3, maxIdle: 1, maxRequestsPerConnection: 1 })
      yield* pool.add("a", cfg)
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).idle, 3)
      const id = yield* pool.use("a", (c) => Effect.succeed(idOf(c))) // warm: no wait, no check
      yield* settle
      let s = yield* pool.stats("a")
      assert.strictEqual(s.destroyed.excess, 1)
      assert.isFalse(state.live.has(id))
      assert.deepStrictEqual([s.acquired, s.released, s.leases], [1, 1, 0])
      // A failing use is returned (and checked) as well.
      const failed = yield* Effect.flip(pool.use("a", () => Effect.fail("boom" as const)))
      assert.strictEqual(failed, "boom")
      yield* settle
      s = yield* pool.stats("a")
      assert.strictEqual(s.destroyed.excess, 2)
      assert.deepStrictEqual([s.acquired, s.released, s.leases], [2, 2, 0])
    }))

  it.effect("maxIdle is not applied to a session still lent to another borrower, nor when idle sessions are within it", () =>
    Effect.gen(function*() {
      const { pool } = yield* syncSetup({ maxConnections: 2, maxIdle: 1, maxRequestsPerConnection: 2 })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void) // one session, idle: within maxIdle
      assert.strictEqual((yield* pool.stats("a")).destroyed.excess, 0)
      const scope = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(scope)) // lent once
      yield* pool.use("a", () => Effect.void) // shares it, returns it while the get still holds it
      assert.strictEqual((yield* pool.stats("a")).destroyed.excess, 0)
      yield* Scope.close(scope, Exit.void)
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.destroyed.excess, s.idle, s.total], [0, 1, 1])
    }))
})

/**
 * The available list, modelled: a fixed-size pool (minIdle = maxConnections) of `n` sessions with `c` slots
 * each, borrowed by `tryLeaseUnsafe` and by `get` (the Pool's own lease), returned in random order, and
 * invalidated. The model keeps the list as an array (head first): a borrow picks the head (fill-first) or the
 * first session with the fewest borrowers (least-loaded) and moves it to the head, a saturated session leaves
 * the list, a return puts a session that was off the list back at the head, an invalidated session leaves the
 * list and its replacement (the next id) joins at the tail once the old one is closed (at once if idle, else
 * when its last borrower returns it). Every borrow must get the session the model picks, a sync borrow must
 * find nothing exactly when the model's list is empty, and a sync return must need the Pool (an effect) exactly
 * when its session was invalidated.
 */
type ListOp =
  | { readonly _tag: "sync" }
  | { readonly _tag: "get" }
  | { readonly _tag: "release"; readonly index: number }
  | { readonly _tag: "invalidate"; readonly index: number }

const listOp: fc.Arbitrary<ListOp> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ _tag: "sync" as const }) },
  { weight: 2, arbitrary: fc.constant({ _tag: "get" as const }) },
  { weight: 4, arbitrary: fc.record({ _tag: fc.constant("release" as const), index: fc.nat(31) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("invalidate" as const), index: fc.nat(7) }) }
)

describe("ConnectionPool: the available list under sync and Pool borrows (model)", () => {
  it("every borrow gets the session the list model picks", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom("least-loaded" as const, "fill-first" as const),
        fc.array(listOp, { maxLength: 60 }),
        (n, c, balance, ops) =>
          Effect.runPromise(Effect.scoped(Effect.gen(function*() {
            const { pool, state, tryLease } = yield* syncSetup({ maxConnections: n, minIdle: n, maxRequestsPerConnection: c, balance })
            yield* pool.add("a", cfg)
            yield* settle
            const list: Array<number> = []
            const refs = new Map<number, number>()
            const dead = new Set<number>()
            const conns = new Map<number, McpConnection>()
            let made = n
            const replace = () => {
              made++
              refs.set(made, 0)
              list.push(made)
            }
            type Held = { readonly id: number; readonly sync: boolean; readonly release: Effect.Effect<boolean> }
            const held: Array<Held> = []
            const give = (h: Held) =>
              Effect.gen(function*() {
                const handedBack = yield* h.release
                if (h.sync) assert.strictEqual(handedBack, dead.has(h.id), `sync return of ${h.id}`)
                const r = refs.get(h.id)! - 1
                refs.set(h.id, r)
                if (dead.has(h.id)) {
                  if (r === 0) {
                    yield* settle
                    replace()
                  }
                } else if (r < c && !list.includes(h.id)) list.unshift(h.id)
              })
            // Normalise: take every slot (the list empties), give them back in order: the list order is now known.
            for (let i = 0; i < n * c; i++) {
              const lease = tryLease("a")
              assert.isDefined(lease, `slot ${i} of ${n * c}`)
              const id = idOf(lease!.connection)
              conns.set(id, lease!.connection)
              refs.set(id, (refs.get(id) ?? 0) + 1)
              held.push({ id, sync: true, release: releaseSync(lease!) })
            }
            assert.isUndefined(tryLease("a"))
            assert.deepStrictEqual([...refs.values()], Array.from({ length: n }, () => c))
            for (const h of held.splice(0)) yield* give(h)
            const pick = (): number | undefined => {
              if (list.length === 0) return undefined
              let best = list[0]!
              if (balance === "least-loaded") for (const id of list) if (refs.get(id)! < refs.get(best)!) best = id
              list.splice(list.indexOf(best), 1)
              refs.set(best, refs.get(best)! + 1)
              if (refs.get(best)! < c) list.unshift(best)
              return best
            }
            for (const op of ops) {
              if (op._tag === "release") {
                if (held.length > 0) yield* give(held.splice(op.index % held.length, 1)[0]!)
                continue
              }
              if (op._tag === "invalidate") {
                const alive = [...refs.keys()].filter((id) => !dead.has(id) && conns.has(id))
                if (alive.length === 0) continue
                const id = alive[op.index % alive.length]!
                yield* pool.invalidate("a", conns.get(id)!)
                yield* settle
                dead.add(id)
                if (list.includes(id)) list.splice(list.indexOf(id), 1)
                if (refs.get(id) === 0) replace()
                continue
              }
              if (op._tag === "get" && list.length === 0) continue // it would wait
              const expected = pick()
              if (op._tag === "sync") {
                const lease = tryLease("a")
                assert.strictEqual(lease === undefined ? undefined : idOf(lease.connection), expected)
                if (lease !== undefined) {
                  conns.set(expected!, lease.connection)
                  held.push({ id: expected!, sync: true, release: releaseSync(lease) })
                }
              } else {
                const scope = yield* Scope.make()
                const conn = yield* pool.get("a").pipe(Scope.provide(scope))
                assert.strictEqual(idOf(conn), expected)
                conns.set(expected!, conn)
                held.push({ id: expected!, sync: false, release: Effect.as(Scope.close(scope, Exit.void), false) })
              }
            }
            const s = yield* pool.stats("a")
            assert.strictEqual(s.leases, held.length)
            assert.strictEqual(s.destroyed.invalidated, dead.size)
            for (const h of held.splice(0)) yield* give(h)
            yield* settle
            const end = yield* pool.stats("a")
            assert.deepStrictEqual([end.leases, end.idle, end.total, end.acquired, state.created], [0, n, n, end.released, made])
          })))
      ),
      { numRuns: 200 }
    )
  })
})

describe("ConnectionPool hot path: health, lifetime, ping, leaks, waits (mutation pins)", () => {
  it.effect("a connect that fails with something else is wrapped in McpConnectError (empty stderrTail)", () =>
    Effect.gen(function*() {
      const connect: ConnectionPool.Connect = () => Effect.fail("no route" as unknown as McpConnectError)
      const pool = yield* ConnectionPool.make({ pingAfterIdle: null }, { connect })
      yield* pool.add("a", cfg)
      const e = yield* Effect.flip(pool.use("a", () => Effect.void))
      assert.instanceOf(e, McpConnectError)
      assert.strictEqual(e.message, "could not connect to a: no route")
      assert.strictEqual((e as McpConnectError).stderrTail, "")
    }))

  it.effect("PoolClosedError names the reason: a removed server, a closed pool", () =>
    Effect.gen(function*() {
      const { connect } = richFakes()
      const scope = yield* Scope.make()
      const pool = yield* ConnectionPool.make({ pingAfterIdle: null, maxConnections: 1, maxRequestsPerConnection: 1 }, { connect }).pipe(
        Scope.provide(scope)
      )
      yield* pool.add("a", cfg)
      yield* pool.add("b", cfg)
      const held = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(held))
      yield* pool.get("b").pipe(Scope.provide(held))
      const waitA = yield* Effect.forkChild(Effect.flip(pool.use("a", () => Effect.void)))
      const waitB = yield* Effect.forkChild(Effect.flip(pool.use("b", () => Effect.void)))
      yield* settle
      yield* pool.remove("a")
      const removed = yield* Fiber.join(waitA)
      assert.strictEqual(removed._tag, "PoolClosedError")
      assert.strictEqual(removed.message, "server a was removed from the pool")
      yield* Scope.close(scope, Exit.void)
      const closed = yield* Fiber.join(waitB)
      assert.strictEqual(closed._tag, "PoolClosedError")
      assert.strictEqual(closed.message, "the connection pool is closed (server b)")
    }))

  it.effect("a failed warm-up connect stays in the Pool: the sweep and the borrows step over it", () =>
    Effect.gen(function*() {
      const { pool, state, tryLease } = yield* syncSetup({
        maxConnections: 2,
        minIdle: 2,
        maxRequestsPerConnection: 2,
        maxLifetime: "10 seconds",
        lifetimeJitter: 0
      })
      state.failNext = 1
      yield* pool.add("a", cfg)
      yield* settle
      assert.strictEqual(state.created, 1)
      const lease = tryLease("a")! // the healthy session, whichever end of the list the failed item is at
      assert.isDefined(lease)
      const again = tryLease("a") // least-loaded: the failed item (0 borrowers) is not a choice
      assert.isDefined(again)
      assert.strictEqual(idOf(again!.connection), idOf(lease.connection))
      yield* releaseSync(lease)
      yield* releaseSync(again!)
      yield* TestClock.adjust("10 seconds")
      yield* settle
      // the sweep got past the failed item to retire the expired session
      assert.strictEqual((yield* pool.stats("a")).destroyed.lifetime, 1)
    }))

  it.effect("only failed items available: nothing is lent synchronously; a borrow that waited for a connect is counted", () =>
    Effect.gen(function*() {
      const { pool, state, tryLease } = yield* syncSetup({ maxConnections: 2, minIdle: 2 })
      state.failNext = 2
      yield* pool.add("a", cfg)
      yield* settle
      assert.strictEqual(state.created, 0)
      assert.isUndefined(tryLease("a"))
      yield* pool.use("a", () => Effect.void)
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.waits, s.acquired], [1, 1])
    }))

  it.effect("slow-path borrows that did not wait are not counted as waits, and are not pinged before pingAfterIdle", () =>
    Effect.gen(function*() {
      // leak detection on: every get takes the slow path (Pool.get, then the checks of hand-out)
      const { pool, state } = yield* syncSetup({ leakDetectionThreshold: "1 hour", pingAfterIdle: "10 seconds", maxRequestsPerConnection: 2 })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void) // cold: waited for the connect
      assert.strictEqual((yield* pool.stats("a")).waits, 1)
      const scope = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(scope)) // warm, idle < 10 s: no ping, no wait
      yield* TestClock.adjust("15 seconds")
      yield* pool.get("a").pipe(Scope.provide(scope)) // shared with a borrower: no ping either
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.waits, s.leases, state.pings], [1, 2, 0])
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("10 seconds") // idle exactly pingAfterIdle: pinged on the next borrow
      yield* Effect.scoped(pool.get("a"))
      assert.strictEqual(state.pings, 1)
      assert.deepStrictEqual(state.pingOptions, [{ timeout: 5_000 }])
    }))

  it.effect("a borrow waiting behind a queued borrower counts as a wait; the histogram records the wait in seconds", () =>
    Effect.gen(function*() {
      const { pool } = yield* syncSetup({ maxConnections: 1, maxRequestsPerConnection: 1, leakDetectionThreshold: "1 hour" })
      yield* pool.add("wh", cfg)
      yield* TestClock.adjust("5 seconds")
      const first = yield* Scope.make()
      yield* pool.get("wh").pipe(Scope.provide(first)) // cold at t = 5 s: waited 0 s for the connect
      const second = yield* Effect.forkChild(Effect.scoped(pool.get("wh")))
      yield* settle
      yield* TestClock.adjust("2 seconds")
      yield* Scope.close(first, Exit.void)
      yield* Fiber.join(second)
      const s = yield* pool.stats("wh")
      assert.strictEqual(s.waits, 2)
      const hist = yield* Metric.value(Metric.withAttributes(ConnectionPool.metrics.acquireDuration, { server: "wh" }))
      assert.strictEqual(hist.count, 2)
      assert.closeTo(hist.sum, 2, 1e-9)
    }))

  it.effect("a session that broke quietly (isOpen false, no close event) is never lent: retired as broken on the next borrow or sweep", () =>
    Effect.gen(function*() {
      const { breakQuietly, pool, state, tryLease } = yield* syncSetup({ housekeepingInterval: "1 hour" })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void)
      breakQuietly(1)
      assert.isUndefined(tryLease("a"))
      const viaUse = yield* pool.use("a", (c) => Effect.succeed(idOf(c)))
      assert.strictEqual(viaUse, 2)
      breakQuietly(2)
      const viaGet = yield* Effect.scoped(Effect.map(pool.get("a"), idOf))
      assert.strictEqual(viaGet, 3)
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.destroyed.broken, s.total], [2, 1])
      assert.deepStrictEqual([...state.live.keys()], [3])
    }))

  it.effect("the sweep retires a quietly broken idle session as broken", () =>
    Effect.gen(function*() {
      const { breakQuietly, pool, state } = yield* syncSetup()
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void)
      breakQuietly(1)
      yield* TestClock.adjust("1 second")
      yield* settle
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.destroyed.broken, s.total], [1, 0])
      assert.strictEqual(state.live.size, 0)
    }))

  it.effect("a session at its lifetime exactly is not lent (warm or slow path) and is retired as lifetime", () =>
    Effect.gen(function*() {
      const { pool, tryLease } = yield* syncSetup({ maxLifetime: "10 seconds", lifetimeJitter: 0, housekeepingInterval: "1 hour" })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void)
      yield* TestClock.adjust(9_999)
      const lease = tryLease("a")
      assert.isDefined(lease)
      yield* releaseSync(lease!)
      yield* TestClock.adjust(1)
      assert.isUndefined(tryLease("a"))
      const id = yield* pool.use("a", (c) => Effect.succeed(idOf(c)))
      assert.strictEqual(id, 2)
      assert.strictEqual((yield* pool.stats("a")).destroyed.lifetime, 1)
    }))

  it.effect("a session lent to another borrower is shared without a ping, however long ago it was idle", () =>
    Effect.gen(function*() {
      const { pool, state, tryLease } = yield* syncSetup({ pingAfterIdle: "10 seconds", maxRequestsPerConnection: 2 })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void) // idle since t = 0
      yield* TestClock.adjust("5 seconds")
      const first = tryLease("a")!
      yield* TestClock.adjust("10 seconds")
      const second = tryLease("a") // idleSince is 0, but the session is in use
      assert.isDefined(second)
      yield* releaseSync(second!)
      yield* releaseSync(first)
      assert.strictEqual(state.pings, 0)
    }))

  it.effect("a ping interrupted with its borrower retires nothing", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* syncSetup({ pingAfterIdle: "10 seconds" })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void)
      yield* TestClock.adjust("20 seconds")
      state.ping = Effect.never
      const borrower = yield* Effect.forkChild(pool.use("a", () => Effect.void))
      yield* settle
      assert.strictEqual(state.pings, 1)
      yield* Fiber.interrupt(borrower)
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.destroyed.ping, s.leases, s.idle, s.total], [0, 0, 1, 1])
    }))

  it.effect("after a failed ping the retry waits only for what is left of acquireTimeout", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* syncSetup({ maxConnections: 1, pingAfterIdle: "5 seconds", acquireTimeout: "10 seconds" })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void)
      yield* TestClock.adjust("10 seconds")
      state.ping = Effect.andThen(Effect.sleep("4 seconds"), Effect.fail(new McpConnectError({ server: "a", message: "ping failed", stderrTail: "" })))
      state.connectMs = { a: 3_600_000 } // the replacement hangs
      const borrower = yield* Effect.forkChild(Effect.flip(pool.use("a", () => Effect.void)))
      yield* settle
      yield* TestClock.adjust("4 seconds") // ping fails at t = 14 s: 6 s of the 10 s are left
      yield* settle
      yield* TestClock.adjust("6 seconds")
      yield* settle
      const e = yield* Fiber.join(borrower)
      assert.strictEqual(e._tag, "PoolTimeoutError")
      assert.strictEqual((yield* pool.stats("a")).destroyed.ping, 1)
      yield* TestClock.adjust("1 hour") // let the hung connect end, so the pool can close
    }))

  it.effect("the acquire timeout's message carries the pool state", () =>
    Effect.gen(function*() {
      const { pool } = yield* syncSetup({ maxConnections: 1, maxRequestsPerConnection: 1, acquireTimeout: "3 seconds" })
      yield* pool.add("a", cfg)
      const scope = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(scope))
      const waiter = yield* Effect.forkChild(Effect.flip(pool.use("a", () => Effect.void)))
      yield* settle
      yield* TestClock.adjust("3 seconds")
      const e = yield* Fiber.join(waiter)
      assert.strictEqual(e._tag, "PoolTimeoutError")
      assert.strictEqual(e.message, "no session of a available within 3000 ms (total=1, active=1, starting=0, waiting=0)")
    }))
})

describe("ConnectionPool sweep, retire, close and balance (mutation pins)", () => {
  it.effect("a retired session is counted once; a crash while it is still lent ends its child at once", () =>
    Effect.gen(function*() {
      const { crash, pool, state } = yield* syncSetup()
      yield* pool.add("a", cfg)
      const scope = yield* Scope.make()
      const conn = yield* pool.get("a").pipe(Scope.provide(scope))
      yield* pool.invalidate("a", conn)
      yield* pool.invalidate("a", conn)
      assert.isTrue(state.live.has(idOf(conn))) // lent: closed when returned
      crash(idOf(conn))
      yield* settle
      assert.isFalse(state.live.has(idOf(conn))) // broken: closed at once, though still lent
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.destroyed.invalidated, s.destroyed.broken, s.leases], [1, 0, 1])
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* pool.stats("a")).leases, 0)
    }))

  it.effect("remove waits for a session that was already closing when it started", () =>
    Effect.gen(function*() {
      const { crash, pool, state } = yield* syncSetup()
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void)
      const gate = yield* Deferred.make<void>()
      state.closeGate = gate
      crash(1) // its close starts, and waits for the gate
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).total, 0)
      const removal = yield* Effect.forkChild(pool.remove("a"))
      yield* settle
      assert.isUndefined(removal.pollUnsafe()) // the child has not exited yet
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(removal)
      assert.strictEqual(state.closed, 1)
    }))

  it.effect("a connect keeps its slot until connectSlotHold or its end, and gives it back once", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* syncSetup({ maxConcurrentConnects: 1, connectSlotHold: "1 second", minIdle: 1 })
      state.connectMs = { a: 1_500, b: 10_000, c: 10_000 }
      yield* pool.add("a", cfg)
      yield* pool.add("b", cfg)
      yield* pool.add("c", cfg)
      yield* settle
      assert.strictEqual(state.connecting, 1) // a holds the one slot
      yield* TestClock.adjust(1_000) // a's hold ends: b takes the slot
      yield* settle
      assert.strictEqual(state.connecting, 2)
      yield* TestClock.adjust(600) // a ends (t = 1.6 s): its slot was already given back, c still waits for b's
      yield* settle
      assert.strictEqual(state.connecting, 1)
      yield* TestClock.adjust(400) // b's hold ends (t = 2 s): c starts
      yield* settle
      assert.strictEqual(state.connecting, 2)
      assert.strictEqual(state.peakConnecting, 2)
      yield* TestClock.adjust("20 seconds")
      yield* settle
      assert.strictEqual(state.created, 3)
    }))

  it.effect("idle timeout: retired at exactly idleTimeout; a lent session is never idle-evicted, and does not use up the idle count", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* syncSetup({ idleTimeout: "10 seconds", maxRequestsPerConnection: 1 })
      yield* pool.add("a", cfg)
      const a = yield* Scope.make()
      const b = yield* Scope.make()
      const first = yield* pool.get("a").pipe(Scope.provide(a)) // session 1, idle since t = 0 before this
      yield* pool.get("a").pipe(Scope.provide(b)) // session 2
      yield* Scope.close(b, Exit.void) // 2 idle since t = 0
      yield* TestClock.adjust("9 seconds")
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).destroyed.idle, 0)
      yield* TestClock.adjust("1 second") // t = 10 s: 2 has idled exactly idleTimeout
      yield* settle
      let s = yield* pool.stats("a")
      assert.strictEqual(s.destroyed.idle, 1)
      assert.deepStrictEqual([...state.live.keys()], [idOf(first)]) // 1 is lent: kept
      yield* TestClock.adjust("20 seconds")
      yield* settle
      s = yield* pool.stats("a")
      assert.deepStrictEqual([s.destroyed.idle, s.total], [1, 1])
      yield* Scope.close(a, Exit.void)
    }))

  it.effect("a lent session retired in a sweep does not count against minIdle for the idle ones", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* syncSetup({
        minIdle: 1,
        maxConnections: 3,
        maxRequestsPerConnection: 1,
        idleTimeout: "10 seconds",
        maxLifetime: "30 seconds",
        lifetimeJitter: 0
      })
      yield* pool.add("a", cfg)
      yield* settle
      const held = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(held)) // session 1 (the warm one), lent; expires at t = 30 s
      yield* TestClock.adjust("20 seconds")
      yield* settle
      const b = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(b))
      yield* pool.get("a").pipe(Scope.provide(b))
      yield* Scope.close(b, Exit.void) // sessions 2 and 3 idle since t = 20 s
      assert.strictEqual(state.created, 3)
      yield* TestClock.adjust("10 seconds") // t = 30 s: 1 expires (lent), 2 and 3 have idled 10 s
      yield* settle
      const s = yield* pool.stats("a")
      // 1 retired for its lifetime; of the two idle ones, one goes (idle 2 > minIdle 1), one stays
      assert.deepStrictEqual([s.destroyed.lifetime, s.destroyed.idle, s.idle], [1, 1, 1])
      yield* Scope.close(held, Exit.void)
    }))

  it.effect("leak detection: a lease held exactly leakDetectionThreshold is reported, with its age, once", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const capture = Logger.make((options) => {
        logs.push(`${options.logLevel}: ${String(options.message)}`)
      })
      const fakes = richFakes()
      const pool = yield* ConnectionPool.make(
        { pingAfterIdle: null, leakDetectionThreshold: "5 seconds" },
        { connect: fakes.connect }
      ).pipe(Effect.provideService(Logger.CurrentLoggers, new Set([capture])))
      yield* pool.add("a", cfg)
      yield* TestClock.adjust("2 seconds")
      const scope = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(scope)) // since t = 2 s
      yield* TestClock.adjust("4 seconds") // held 4 s
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).suspectedLeaks, 0)
      yield* TestClock.adjust("1 second") // held 5 s
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).suspectedLeaks, 1)
      assert.deepStrictEqual(logs, [
        'Warn: ConnectionPool: a session of "a" has been leased for 5000 ms (leakDetectionThreshold 5000 ms): is a scope from pool.get never closed?'
      ])
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("use takes the least-loaded session too (not just the Pool's head)", () =>
    Effect.gen(function*() {
      const { pool } = yield* syncSetup({ maxConnections: 2, minIdle: 2, maxRequestsPerConnection: 4 })
      yield* pool.add("a", cfg)
      yield* settle
      const gate = yield* Deferred.make<void>()
      const ids: Array<number> = []
      const user = (i: number) =>
        // built inside the fiber: `use` picks its session when it is called (see the report in notes-pool-cache.md)
        Effect.forkChild(Effect.suspend(() => pool.use("a", (c) => Effect.andThen(Effect.sync(() => (ids[i] = idOf(c))), Deferred.await(gate)))))
      const fibers = [yield* user(0), yield* user(1)]
      yield* settle
      assert.strictEqual(new Set(ids).size, 2)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll(fibers)
    }))

  it.effect("maxIdle applies to warm gets, counts only idle sessions, and spares a session still lent", () =>
    Effect.gen(function*() {
      const { pool } = yield* syncSetup({ maxConnections: 3, minIdle: 3, maxIdle: 1, maxRequestsPerConnection: 2 })
      yield* pool.add("a", cfg)
      yield* settle
      const held = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(held)) // warm get: session x, now 2 idle
      const shared = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(shared)) // least-loaded: another session y; 1 idle
      yield* pool.get("a").pipe(Scope.provide(shared)) // the idle one z; 0 idle
      yield* pool.get("a").pipe(Scope.provide(shared)) // shares x or y or z
      assert.strictEqual((yield* pool.stats("a")).destroyed.excess, 0)
      yield* Scope.close(shared, Exit.void) // y and z come back idle (2 > 1): one of them goes
      let s = yield* pool.stats("a")
      assert.strictEqual(s.destroyed.excess, 1)
      yield* Scope.close(held, Exit.void) // x comes back: idle 2 > 1 again
      yield* settle
      s = yield* pool.stats("a")
      assert.strictEqual(s.destroyed.excess, 2)
    }))

  it.effect("maxIdle: a session returned while another is lent is kept when the idle ones are within maxIdle", () =>
    Effect.gen(function*() {
      const { pool } = yield* syncSetup({ maxConnections: 2, maxIdle: 1, maxRequestsPerConnection: 1 })
      yield* pool.add("a", cfg)
      const held = yield* Scope.make()
      yield* pool.get("a").pipe(Scope.provide(held)) // session 1 lent
      yield* pool.use("a", () => Effect.void) // session 2, returned: 1 idle (the lent one is not idle)
      const s = yield* pool.stats("a")
      assert.deepStrictEqual([s.destroyed.excess, s.idle, s.total], [0, 1, 2])
      yield* Scope.close(held, Exit.void)
    }))
})
