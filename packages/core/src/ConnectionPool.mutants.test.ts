/**
 * Tests that pin `ConnectionPool.ts`'s hot path for mutation testing (`npm run mutation`, see MUTATION.md):
 * the errors a borrower sees (unknown server, removed server, closed pool, a failed connect) and the lease
 * counters of `stats`. Fake sessions, no processes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
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

/** Fake sessions by id: `open` is what `isOpen()` answers, `crash` also announces the close. */
const richFakes = () => {
  const state = { created: 0, closed: 0, pings: 0, failPing: false, live: new Map<number, Fake>() }
  const connect: ConnectionPool.Connect = (name) =>
    Effect.acquireRelease(
      Effect.sync(() => {
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
          ping: () =>
            Effect.suspend(() => {
              state.pings++
              return state.failPing || !fake.open ? Effect.fail(new McpConnectError({ server: name, message: "ping failed", stderrTail: "" })) : Effect.void
            }),
          close: () => Effect.void
        } as unknown as McpConnection
      }),
      (conn) =>
        Effect.sync(() => {
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
  return { state, connect, crash }
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
