/**
 * ConnectionPool with fake sessions (an injected `connect`) and the TestClock: lifetime and idle eviction,
 * acquire timeout, health, close, metrics, and one test per seed defect (reference-behaviour.md).
 * Real processes are in `ConnectionPool.mcp.test.ts`; the model-based test is in
 * `ConnectionPool.model.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Layer, Metric, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as ConnectionPool from "./ConnectionPool.ts"
import { UnknownServerError } from "./ManagerErrors.ts"
import type { ConnectOptions, McpConnection } from "./McpClient.ts"
import { McpClosedError, McpConnectError } from "./McpError.ts"
import type { ServerConfig } from "./ServerConfig.ts"
import { SessionHooks, type SessionHooksShape } from "./SessionHooks.ts"

const cfg: ServerConfig = { type: "stdio", command: "fake" }

/** A fake session: `crash` closes it as a dead child would; `break` only flips `isOpen` (as HTTP does). */
export interface FakeConn extends McpConnection {
  readonly id: number
  readonly crash: () => void
  readonly break: () => void
}

/** Fake sessions with counters: every session created, closed, live per server, connects in flight. */
export const makeFakes = () => {
  const state = {
    created: 0,
    closed: 0,
    live: new Map<number, FakeConn>(),
    peakLivePerServer: new Map<string, number>(),
    connecting: 0,
    peakConnecting: 0,
    failNext: 0,
    failPing: false,
    pings: 0,
    /** When set, connects wait for this gate. */
    gate: undefined as Deferred.Deferred<void> | undefined
  }
  const liveOf = (server: string) => Array.from(state.live.values()).filter((c) => c.name === server)
  const connect: ConnectionPool.Connect = (name) =>
    Effect.acquireRelease(
      Effect.gen(function*() {
        state.connecting++
        state.peakConnecting = Math.max(state.peakConnecting, state.connecting)
        try {
          if (state.gate !== undefined) yield* Deferred.await(state.gate)
          yield* Effect.yieldNow
          if (state.failNext > 0) {
            state.failNext--
            return yield* new McpConnectError({ server: name, message: `fake connect to ${name} failed`, stderrTail: "" })
          }
        } finally {
          state.connecting--
        }
        const id = ++state.created
        let open = true
        const closed = Deferred.makeUnsafe<string>()
        const conn = {
          id,
          name,
          config: cfg,
          pid: undefined,
          isOpen: () => open,
          closed: Deferred.await(closed),
          ping: () =>
            Effect.suspend(() => {
              state.pings++
              return state.failPing || !open
                ? Effect.fail(new McpClosedError({ server: name, method: "ping", message: "fake ping failed" }))
                : Effect.void
            }),
          crash: () => {
            open = false
            Deferred.doneUnsafe(closed, Effect.succeed("crashed"))
          },
          break: () => {
            open = false
          }
        } as unknown as FakeConn
        state.live.set(id, conn)
        const n = liveOf(name).length
        state.peakLivePerServer.set(name, Math.max(state.peakLivePerServer.get(name) ?? 0, n))
        return conn
      }),
      (conn) =>
        Effect.sync(() => {
          if (state.live.delete(conn.id)) state.closed++
          ;(conn as unknown as { break: () => void }).break()
        })
    )
  return { state, connect, liveOf }
}

const fakeId = (c: McpConnection) => (c as FakeConn).id

/** A pool with fakes, in the test's scope. */
const setup = (config: ConnectionPool.ConnectionPoolConfigInput = {}) =>
  Effect.gen(function*() {
    const fakes = makeFakes()
    const pool = yield* ConnectionPool.make({ pingAfterIdle: null, ...config }, { connect: fakes.connect })
    return { pool, ...fakes }
  })

/** Borrows in a fresh scope, returning the session and the scope that releases it. */
const hold = (pool: ConnectionPool.ConnectionPoolShape, server: string) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const conn = yield* pool.get(server).pipe(Scope.provide(scope))
    return { conn, release: Scope.close(scope, Exit.void) }
  })

const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

describe("ConnectionPool: healthCheck", () => {
  it.effect("pings open sessions in place: starts none, keeps idle clocks, retires the ones that fail", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ idleTimeout: "10 seconds" })
      yield* pool.add("a", cfg)
      // No session yet: nothing is started just to be checked.
      assert.deepStrictEqual(yield* pool.healthCheck("a"), { ok: 0, checked: 0 })
      assert.strictEqual(state.created, 0)
      yield* pool.use("a", () => Effect.void)
      // Checks every 4 s do not keep the idle session from its 10 s idle timeout.
      const seen: Array<{ ok: number; checked: number }> = []
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("4 seconds")
        yield* settle
        seen.push(yield* pool.healthCheck("a"))
      }
      // t=4 s and 8 s: checked and fine; t=12 s: the session has idled out, checks or not.
      assert.deepStrictEqual(seen, [{ ok: 1, checked: 1 }, { ok: 1, checked: 1 }, { ok: 0, checked: 0 }])
      assert.strictEqual((yield* pool.stats("a")).destroyed.idle, 1)
      // A session that fails its ping is retired.
      yield* pool.use("a", () => Effect.void)
      state.failPing = true
      assert.deepStrictEqual(yield* pool.healthCheck("a"), { ok: 0, checked: 1 })
      assert.strictEqual((yield* pool.stats("a")).destroyed.ping, 1)
      assert.strictEqual((yield* pool.stats("a")).total, 0)
    }))
})

describe("ConnectionPool: leak detection", () => {
  it.effect("a get lease held past leakDetectionThreshold is counted (once); short leases are not", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup({ leakDetectionThreshold: "5 seconds" })
      yield* pool.add("a", cfg)
      const short = yield* hold(pool, "a")
      yield* TestClock.adjust("2 seconds")
      yield* short.release
      const leaked = yield* hold(pool, "a")
      yield* TestClock.adjust("6 seconds")
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).suspectedLeaks, 1)
      yield* TestClock.adjust("10 seconds")
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).suspectedLeaks, 1)
      yield* leaked.release
      assert.strictEqual((yield* pool.stats("a")).active, 0)
    }))

  it.effect("off by default", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup()
      yield* pool.add("a", cfg)
      yield* hold(pool, "a")
      yield* TestClock.adjust("1 hour")
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).suspectedLeaks, 0)
    }))
})

describe("ConnectionPool: borrowing", () => {
  it.effect("use lends a session and gives it back; warm borrows reuse it", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup()
      yield* pool.add("a", cfg)
      const ids: Array<number> = []
      for (let i = 0; i < 5; i++) ids.push(yield* pool.use("a", (c) => Effect.succeed(fakeId(c))))
      assert.deepStrictEqual(ids, [1, 1, 1, 1, 1])
      const s = yield* pool.stats("a")
      assert.strictEqual(s.total, 1)
      assert.strictEqual(s.idle, 1)
      assert.strictEqual(s.leases, 0)
      assert.strictEqual(s.acquired, 5)
      assert.strictEqual(s.released, 5)
      assert.strictEqual(state.created, 1)
    }).pipe(Effect.scoped))

  it.effect("an effect run again borrows again: decisions are taken when it runs, not when it is built", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ maxIdle: 1 })
      // Built before the server exists: it must find the server when it runs.
      const borrow = pool.use("a", (c) => Effect.succeed(fakeId(c)))
      const scoped = Effect.scoped(Effect.map(pool.get("a"), fakeId))
      yield* pool.add("a", cfg)
      // The same effect values run three times each (warm path with maxIdle, and get's slow path).
      const ids = [yield* borrow, yield* borrow, yield* borrow, yield* scoped, yield* scoped]
      assert.deepStrictEqual(ids, [1, 1, 1, 1, 1])
      assert.strictEqual((yield* pool.stats("a")).acquired, 5)
      // After the session dies, running the same value again picks a live one (the check runs each time).
      state.live.get(1)!.crash()
      assert.strictEqual(yield* borrow, 2)
      assert.strictEqual((yield* pool.stats("a")).acquired, 6)
      // Two runs of one value at once each get a borrow of their own.
      const pair = yield* Effect.all([borrow, borrow], { concurrency: 2 })
      assert.strictEqual(pair.length, 2)
      assert.strictEqual((yield* pool.stats("a")).acquired, 8)
    }).pipe(Effect.scoped))

  it.effect("release happens on failure and on interruption too", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup()
      yield* pool.add("a", cfg)
      const failed = yield* Effect.flip(pool.use("a", () => Effect.fail("boom" as const)))
      assert.strictEqual(failed, "boom")
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.forkChild(pool.use("a", () => Effect.andThen(Deferred.succeed(started, undefined), Effect.never)))
      yield* Deferred.await(started)
      assert.strictEqual((yield* pool.stats("a")).leases, 1)
      yield* Fiber.interrupt(fiber)
      const s = yield* pool.stats("a")
      assert.strictEqual(s.leases, 0)
      assert.strictEqual(s.acquired, s.released)
    }).pipe(Effect.scoped))

  it.effect("an unknown server fails with UnknownServerError listing the known ones", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup()
      yield* pool.add("github", cfg)
      yield* pool.add("slack", cfg)
      for (const e of [
        yield* Effect.flip(pool.use("gitlab", () => Effect.void)),
        yield* Effect.flip(Effect.scoped(pool.get("gitlab"))),
        yield* Effect.flip(pool.stats("gitlab")),
        yield* Effect.flip(pool.healthCheck("gitlab")),
        yield* Effect.flip(pool.remove("gitlab"))
      ]) {
        assert.instanceOf(e, UnknownServerError)
        if (e._tag === "UnknownServerError") {
          assert.strictEqual(e.server, "gitlab")
          assert.deepStrictEqual(e.available, ["github", "slack"])
          assert.include(e.message, "gitlab")
        }
      }
      assert.deepStrictEqual(yield* pool.list, ["github", "slack"])
    }).pipe(Effect.scoped))

  it.effect("a session is shared by up to maxRequestsPerConnection borrowers, least-loaded first", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ maxConnections: 2, maxRequestsPerConnection: 3, acquireTimeout: "1 minute" })
      yield* pool.add("a", cfg)
      const held = []
      for (let i = 0; i < 6; i++) held.push(yield* hold(pool, "a"))
      assert.strictEqual(state.created, 2)
      const perConn = new Map<number, number>()
      for (const h of held) perConn.set(fakeId(h.conn), (perConn.get(fakeId(h.conn)) ?? 0) + 1)
      assert.deepStrictEqual([...perConn.values()], [3, 3])
      // the 7th waits
      const seventh = yield* Effect.forkChild(hold(pool, "a"))
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).pending, 1)
      yield* held[0]!.release
      const got = yield* Fiber.join(seventh)
      assert.strictEqual(fakeId(got.conn), fakeId(held[0]!.conn))
      assert.strictEqual(state.created, 2)
    }).pipe(Effect.scoped))

  it.effect("per-server overrides replace the pool's settings", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup({ maxConnections: 10 })
      yield* pool.add("small", cfg, { maxConnections: 1, maxRequestsPerConnection: 1, acquireTimeout: "3 seconds" })
      assert.strictEqual((yield* pool.stats("small")).maxConnections, 1)
      const first = yield* hold(pool, "small")
      const second = yield* Effect.forkChild(Effect.flip(pool.use("small", () => Effect.void)))
      yield* TestClock.adjust("3 seconds")
      const e = yield* Fiber.join(second)
      assert.strictEqual(e._tag, "PoolTimeoutError")
      if (e._tag === "PoolTimeoutError") assert.strictEqual(e.timeoutMs, 3_000)
      yield* first.release
    }).pipe(Effect.scoped))

  it.effect("an invalid config fails with McpConfigError naming the field", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(ConnectionPool.make({ maxConnections: 0 }))
      assert.strictEqual(e._tag, "McpConfigError")
      assert.include(e.path, "maxConnections")
      const { pool } = yield* setup()
      const e2 = yield* Effect.flip(pool.add("a", cfg, { lifetimeJitter: 2 }))
      assert.include(e2.path, "lifetimeJitter")
    }).pipe(Effect.scoped))

  it.effect("an unparseable duration fails with McpConfigError naming the field, never a defect", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(ConnectionPool.make({ idleTimeout: "soon" as Duration.Input }))
      assert.strictEqual(e._tag, "McpConfigError")
      assert.strictEqual(e.path, "pool.idleTimeout")
      const { pool } = yield* setup()
      const e2 = yield* Effect.flip(pool.add("a", cfg, { acquireTimeout: "later" as Duration.Input }))
      assert.strictEqual(e2.path, "servers.a.acquireTimeout")
      const e3 = yield* Effect.flip(pool.add("a", cfg, { balance: "random" as "fill-first" }))
      assert.strictEqual(e3.path, "servers.a.balance")
      // nothing was added by the failed adds
      assert.deepStrictEqual(yield* pool.list, [])
      // and through the layer
      const e4 = yield* Effect.flip(Layer.build(ConnectionPool.ConnectionPool.layer({ maxRequestsPerConnection: 0 })))
      assert.strictEqual(e4.path, "pool.maxRequestsPerConnection")
    }).pipe(Effect.scoped))

  it.effect("defaults follow the seed: 10 per server, 5 min lifetime, 2 min idle, 30 s acquire timeout", () =>
    Effect.sync(() => {
      const d = ConnectionPool.defaultConfig
      const ms = (x: Duration.Duration | null) => (x === null ? null : Duration.toMillis(x))
      assert.strictEqual(d.maxConnections, 10)
      assert.strictEqual(d.minIdle, 0)
      assert.strictEqual(d.maxIdle, undefined)
      assert.strictEqual(ms(d.maxLifetime), 300_000)
      assert.strictEqual(d.lifetimeJitter, 0.1)
      assert.strictEqual(ms(d.idleTimeout), 120_000)
      assert.strictEqual(ms(d.acquireTimeout), 30_000)
      assert.strictEqual(d.maxRequestsPerConnection, 32)
      assert.strictEqual(d.balance, "least-loaded")
      assert.strictEqual(ms(d.pingAfterIdle), 30_000)
      assert.strictEqual(ms(d.pingTimeout), 5_000)
      assert.strictEqual(d.leakDetectionThreshold, null)
      assert.strictEqual(d.maxConcurrentConnects, 4)
      assert.strictEqual(Duration.toMillis(d.connectSlotHold), 1_000)
      assert.strictEqual(ms(d.housekeepingInterval), 1_000)
      // every field is pinned above (maxIdle is an optional key: absent)
      assert.strictEqual(Object.keys(ConnectionPool.ConnectionPoolConfig.fields).length, 15)
      assert.strictEqual(Object.keys(d).length, 14)
    }))
})

describe("ConnectionPool: seed defects (reference-behaviour.md)", () => {
  it.effect("defect 1: a second acquire does not overwrite the first; both sessions are tracked and closed", () =>
    Effect.gen(function*() {
      const fakes = makeFakes()
      const scope = yield* Scope.make()
      const pool = yield* ConnectionPool.make({ pingAfterIdle: null, maxRequestsPerConnection: 1 }, { connect: fakes.connect }).pipe(
        Scope.provide(scope)
      )
      yield* pool.add("a", cfg)
      const [one, two] = yield* Effect.gen(function*() {
        const one = yield* pool.get("a")
        const two = yield* pool.get("a")
        assert.notStrictEqual(fakeId(one), fakeId(two))
        assert.strictEqual((yield* pool.stats("a")).total, 2)
        return [one, two] as const
      }).pipe(Effect.scoped)
      const s = yield* pool.stats("a")
      assert.strictEqual(s.idle, 2)
      assert.strictEqual(s.leases, 0)
      assert.strictEqual(fakes.state.closed, 0)
      // closing the pool closes both, each exactly once
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(one.isOpen())
      assert.isFalse(two.isOpen())
      assert.strictEqual(fakes.state.created, 2)
      assert.strictEqual(fakes.state.closed, 2)
      assert.strictEqual(fakes.state.live.size, 0)
    }))

  it.effect("defect 2: the max is never exceeded under concurrency (no check-then-create race)", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ maxConnections: 3, maxRequestsPerConnection: 1, acquireTimeout: "1 hour" })
      yield* pool.add("a", cfg)
      const gate = yield* Deferred.make<void>()
      state.gate = gate
      const fibers = yield* Effect.forEach(
        Array.from({ length: 50 }),
        () => Effect.forkChild(pool.use("a", () => Effect.sleep("1 second")))
      )
      yield* settle
      const s = yield* pool.stats("a")
      assert.strictEqual(s.starting, 3)
      assert.strictEqual(s.pending, 50)
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      for (let i = 0; i < 20; i++) yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll(fibers)
      assert.strictEqual(state.created, 3)
      assert.strictEqual(state.peakLivePerServer.get("a"), 3)
      const after = yield* pool.stats("a")
      assert.strictEqual(after.acquired, 50)
      assert.strictEqual(after.leases, 0)
    }).pipe(Effect.scoped))

  it.effect("defect 3: a waiter interrupted right after it was woken for a session passes it on (no leak)", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ maxConnections: 1, maxRequestsPerConnection: 1 })
      yield* pool.add("a", cfg)
      const held = yield* hold(pool, "a")
      const first = yield* Effect.forkChild(pool.use("a", () => Effect.never))
      const second = yield* Effect.forkChild(pool.use("a", (c) => Effect.succeed(fakeId(c))))
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).pending, 2)
      // The release wakes the first waiter; interrupt it in the same synchronous step, before it runs, so
      // the wake must be passed on to the second waiter rather than lost with the first.
      yield* Effect.sync(() => {
        Effect.runSync(held.release)
        first.interruptUnsafe()
      })
      assert.strictEqual(yield* Fiber.join(second), fakeId(held.conn))
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(first)))
      const s = yield* pool.stats("a")
      assert.strictEqual(s.leases, 0)
      assert.strictEqual(s.pending, 0)
      assert.strictEqual(s.idle, 1)
      // the session is available again at once
      const id = yield* pool.use("a", (c) => Effect.succeed(fakeId(c)))
      assert.strictEqual(id, fakeId(held.conn))
      assert.strictEqual(state.created, 1)
    }).pipe(Effect.scoped))

  it.effect("defect 3b: a waiter whose timeout fires in the instant its session is released leaves no lease behind", () =>
    Effect.gen(function*() {
      // Both orders of the two timers due at t = 10 s: the waiter's timeout first, or the release first.
      const outcomes: Array<string> = []
      for (const releaseFirst of [false, true]) {
        const { pool } = yield* setup({ maxConnections: 1, maxRequestsPerConnection: 1, acquireTimeout: "10 seconds" })
        const name = releaseFirst ? "release-first" : "timeout-first"
        yield* pool.add(name, cfg)
        const held = yield* hold(pool, name)
        const release = Effect.andThen(Effect.sleep("10 seconds"), held.release)
        if (releaseFirst) yield* Effect.forkChild(release)
        yield* Effect.yieldNow
        const waiter = yield* Effect.forkChild(Effect.exit(pool.use(name, () => Effect.succeed("served" as const))))
        yield* settle
        if (!releaseFirst) yield* Effect.forkChild(release)
        yield* settle
        const next = yield* Effect.forkChild(Effect.exit(pool.use(name, () => Effect.succeed("next" as const))))
        yield* settle
        assert.strictEqual((yield* pool.stats(name)).pending, 2)
        yield* TestClock.adjust("10 seconds")
        const exit = yield* Fiber.join(waiter)
        outcomes.push(
          `${name}: ${Exit.isSuccess(exit) ? exit.value : Cause.findErrorOption(exit.cause).pipe((e) => (e._tag === "Some" ? e.value._tag : "?"))}`
        )
        // whoever did not get the session, the next waiter is served by it: nothing is stranded
        const nextExit = yield* Fiber.join(next)
        assert.isTrue(Exit.isSuccess(nextExit) && nextExit.value === "next")
        yield* settle
        const s = yield* pool.stats(name)
        assert.strictEqual(s.pending, 0)
        assert.strictEqual(s.leases, 0)
        assert.strictEqual(s.idle, 1)
        assert.strictEqual(s.acquired, s.released)
      }
      // Effect's Pool never hands a session to a waiter (a woken waiter takes it itself), so a waiter that
      // times out holds nothing. Timeout first: the waiter fails and the release serves the next waiter.
      // Release first: the woken waiter runs before the timer of the same instant and is served.
      assert.deepStrictEqual(outcomes, ["timeout-first: PoolTimeoutError", "release-first: served"])
    }).pipe(Effect.scoped))

  it.effect("defect 4: the acquire timeout is configurable and fails with a typed error naming the server", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup({ maxConnections: 1, maxRequestsPerConnection: 1, acquireTimeout: "5 seconds" })
      yield* pool.add("github", cfg)
      const held = yield* hold(pool, "github")
      const waiter = yield* Effect.forkChild(Effect.flip(pool.use("github", () => Effect.void)))
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(waiter.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const e = yield* Fiber.join(waiter)
      assert.strictEqual(e._tag, "PoolTimeoutError")
      if (e._tag === "PoolTimeoutError") {
        assert.strictEqual(e.server, "github")
        assert.strictEqual(e.timeoutMs, 5_000)
        assert.strictEqual(e.total, 1)
        assert.include(e.message, "github")
      }
      const s = yield* pool.stats("github")
      assert.strictEqual(s.timeouts, 1)
      assert.strictEqual(s.pending, 0)
      const timeouts = yield* Metric.value(Metric.withAttributes(ConnectionPool.metrics.acquireTimeouts, { server: "github" }))
      assert.strictEqual(timeouts.count, 1)
      yield* held.release
    }).pipe(Effect.scoped))

  it.effect("defect 5: a dead session is never handed out; it is replaced on the next borrow", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup()
      yield* pool.add("a", cfg)
      const first = yield* pool.use("a", (c) => Effect.succeed(c as FakeConn))
      first.break() // isOpen() false, no close event yet (an HTTP session found broken)
      const second = yield* pool.use("a", (c) => Effect.succeed(c as FakeConn))
      assert.notStrictEqual(second.id, first.id)
      assert.isTrue(second.isOpen())
      const s = yield* pool.stats("a")
      assert.strictEqual(s.destroyed.broken, 1)
      assert.strictEqual(s.total, 1)
      yield* settle
      assert.isFalse(state.live.has(first.id))
    }).pipe(Effect.scoped))

  it.effect("defect 5b: a session that dies while idle is removed at once (close event), not at the next borrow", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ minIdle: 1 })
      yield* pool.add("a", cfg)
      yield* settle
      const first = yield* pool.use("a", (c) => Effect.succeed(c as FakeConn))
      first.crash()
      yield* settle
      const s = yield* pool.stats("a")
      assert.strictEqual(s.destroyed.broken, 1)
      // minIdle: a replacement is already warm
      assert.strictEqual(s.idle, 1)
      assert.strictEqual(state.created, 2)
      assert.strictEqual(state.live.size, 1)
    }).pipe(Effect.scoped))

  it.effect("defect 6: the wait histogram records only borrows that waited", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup({ maxConnections: 1, maxRequestsPerConnection: 1 })
      yield* pool.add("hist", cfg)
      const histogram = Metric.withAttributes(ConnectionPool.metrics.acquireDuration, { server: "hist" })
      // the first borrow waits for the session to start
      yield* pool.use("hist", () => Effect.void)
      assert.strictEqual((yield* Metric.value(histogram)).count, 1)
      for (let i = 0; i < 100; i++) yield* pool.use("hist", () => Effect.void)
      assert.strictEqual((yield* Metric.value(histogram)).count, 1)
      assert.strictEqual((yield* pool.stats("hist")).waits, 1)
      // a borrow that waits 2 s for a release
      const held = yield* hold(pool, "hist")
      const waiter = yield* Effect.forkChild(pool.use("hist", () => Effect.void))
      yield* Effect.forkChild(Effect.andThen(Effect.sleep("2 seconds"), held.release))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(waiter)
      const h = yield* Metric.value(histogram)
      assert.strictEqual(h.count, 2)
      assert.strictEqual(h.max, 2)
    }).pipe(Effect.scoped))
})

describe("ConnectionPool: lifetime and idle eviction (TestClock)", () => {
  it.effect("an idle session is closed at maxLifetime (no jitter)", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ maxLifetime: "5 minutes", lifetimeJitter: 0, idleTimeout: 0 })
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void)
      yield* TestClock.adjust("4 minutes")
      assert.strictEqual((yield* pool.stats("a")).total, 1)
      yield* TestClock.adjust("1 minute")
      yield* settle
      const s = yield* pool.stats("a")
      assert.strictEqual(s.total, 0)
      assert.strictEqual(s.destroyed.lifetime, 1)
      assert.strictEqual(state.closed, 1)
    }).pipe(Effect.scoped))

  it.effect("a busy session past its lifetime is not lent again and is closed when returned", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ maxLifetime: "1 minute", lifetimeJitter: 0, idleTimeout: 0 })
      yield* pool.add("a", cfg)
      const held = yield* hold(pool, "a")
      // t = 90 s: expired at 60 s (Effect's Pool started its replacement then, which lives until 120 s)
      yield* TestClock.adjust("90 seconds")
      assert.isTrue(state.live.has(fakeId(held.conn)))
      assert.isTrue(held.conn.isOpen())
      const other = yield* pool.use("a", (c) => Effect.succeed(fakeId(c)))
      assert.notStrictEqual(other, fakeId(held.conn))
      yield* held.release
      yield* settle
      assert.isFalse(state.live.has(fakeId(held.conn)))
      assert.strictEqual((yield* pool.stats("a")).destroyed.lifetime, 1)
    }).pipe(Effect.scoped))

  it.effect("lifetimes are staggered: sessions made together expire over [L·(1−jitter), L]", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup({
        maxConnections: 20,
        maxRequestsPerConnection: 1,
        maxLifetime: "100 seconds",
        lifetimeJitter: 0.5,
        idleTimeout: 0
      })
      yield* pool.add("a", cfg)
      const held = []
      for (let i = 0; i < 20; i++) held.push(yield* Effect.forkChild(hold(pool, "a")))
      const all = yield* Fiber.joinAll(held)
      for (const h of all) yield* h.release
      assert.strictEqual((yield* pool.stats("a")).total, 20)
      yield* TestClock.adjust("49 seconds")
      assert.strictEqual((yield* pool.stats("a")).total, 20)
      yield* TestClock.adjust("26 seconds") // t = 75 s: some, not all (P(all one side) ≈ 2e-6)
      const mid = (yield* pool.stats("a")).total
      assert.isAbove(mid, 0)
      assert.isBelow(mid, 20)
      yield* TestClock.adjust("26 seconds")
      assert.strictEqual((yield* pool.stats("a")).total, 0)
    }).pipe(Effect.scoped))

  it.effect("idle sessions above minIdle are closed after idleTimeout", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({
        maxRequestsPerConnection: 1,
        minIdle: 1,
        idleTimeout: "2 minutes",
        maxLifetime: 0
      })
      yield* pool.add("a", cfg)
      const held = []
      for (let i = 0; i < 3; i++) held.push(yield* hold(pool, "a"))
      for (const h of held) yield* h.release
      assert.strictEqual((yield* pool.stats("a")).idle, 3)
      yield* TestClock.adjust("119 seconds")
      assert.strictEqual((yield* pool.stats("a")).idle, 3)
      yield* TestClock.adjust("2 seconds")
      yield* settle
      const s = yield* pool.stats("a")
      assert.strictEqual(s.idle, 1)
      assert.strictEqual(s.destroyed.idle, 2)
      assert.strictEqual(state.live.size, 1)
    }).pipe(Effect.scoped))

  it.effect("a borrow renews idleness: a session used every minute is never idle-evicted", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ idleTimeout: "2 minutes", maxLifetime: 0 })
      yield* pool.add("a", cfg)
      for (let i = 0; i < 10; i++) {
        yield* pool.use("a", () => Effect.void)
        yield* TestClock.adjust("1 minute")
      }
      assert.strictEqual(state.created, 1)
      assert.strictEqual((yield* pool.stats("a")).destroyed.idle, 0)
    }).pipe(Effect.scoped))

  it.effect("minIdle keeps sessions warm without any borrow", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ minIdle: 2 })
      yield* pool.add("a", cfg)
      yield* settle
      assert.strictEqual(state.created, 2)
      assert.strictEqual((yield* pool.stats("a")).idle, 2)
    }).pipe(Effect.scoped))

  it.effect("maxIdle (seed MaxIdleConns) closes sessions returned beyond it", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup({ maxRequestsPerConnection: 1, maxIdle: 2 })
      yield* pool.add("a", cfg)
      const held = []
      for (let i = 0; i < 4; i++) held.push(yield* hold(pool, "a"))
      for (const h of held) yield* h.release
      const s = yield* pool.stats("a")
      assert.strictEqual(s.idle, 2)
      assert.strictEqual(s.destroyed.excess, 2)
    }).pipe(Effect.scoped))

  it.effect("a long-idle session is pinged on borrow and replaced if the ping fails; the caller sees no error", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ pingAfterIdle: "10 seconds", idleTimeout: 0, maxLifetime: 0 })
      yield* pool.add("a", cfg)
      const first = yield* pool.use("a", (c) => Effect.succeed(fakeId(c)))
      yield* TestClock.adjust("5 seconds")
      yield* pool.use("a", () => Effect.void)
      assert.strictEqual(state.pings, 0)
      yield* TestClock.adjust("11 seconds")
      yield* pool.use("a", () => Effect.void)
      assert.strictEqual(state.pings, 1)
      yield* TestClock.adjust("11 seconds")
      state.failPing = true
      const id = yield* pool.use("a", (c) => Effect.succeed(fakeId(c)))
      assert.notStrictEqual(id, first)
      assert.strictEqual((yield* pool.stats("a")).destroyed.ping, 1)
    }).pipe(Effect.scoped))
})

describe("ConnectionPool: start-up, failures, remove and close", () => {
  it.effect("at most maxConcurrentConnects sessions start at once, across servers", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ maxConcurrentConnects: 2, minIdle: 3 })
      const gate = yield* Deferred.make<void>()
      state.gate = gate
      for (const name of ["a", "b", "c"]) yield* pool.add(name, cfg)
      yield* settle
      assert.strictEqual(state.connecting, 2)
      assert.strictEqual((yield* pool.statsAll).reduce((n, s) => n + s.starting, 0), 9)
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      assert.strictEqual(state.created, 9)
      assert.strictEqual(state.peakConnecting, 2)
    }).pipe(Effect.scoped))

  it.effect("a connect keeps its slot for at most connectSlotHold: hung connects cannot starve another server", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ maxConcurrentConnects: 2, connectSlotHold: "1 second" })
      const gate = yield* Deferred.make<void>()
      state.gate = gate // every connect hangs until the gate opens
      yield* pool.add("hung1", cfg)
      yield* pool.add("hung2", cfg)
      yield* pool.add("healthy", cfg)
      const h1 = yield* Effect.forkChild(pool.use("hung1", () => Effect.void))
      const h2 = yield* Effect.forkChild(pool.use("hung2", () => Effect.void))
      yield* settle
      const healthy = yield* Effect.forkChild(pool.use("healthy", () => Effect.void))
      yield* settle
      assert.strictEqual(state.connecting, 2, "both slots taken by the hung connects")
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(state.connecting, 2, "the healthy connect waits while the hold lasts")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(state.connecting, 3, "the hold ran out: the healthy server starts connecting")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(healthy)
      yield* Fiber.join(h1)
      yield* Fiber.join(h2)
    }).pipe(Effect.scoped))

  it.effect("a server that fails to start fails its waiters with McpConnectError, not a timeout", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ maxRequestsPerConnection: 1 })
      yield* pool.add("a", cfg)
      state.failNext = 1
      const e = yield* Effect.flip(pool.use("a", () => Effect.void))
      assert.strictEqual(e._tag, "McpConnectError")
      const s = yield* pool.stats("a")
      assert.strictEqual(s.connectFailures, 1)
      assert.strictEqual(s.pending, 0)
      // and it recovers
      yield* pool.use("a", () => Effect.void)
    }).pipe(Effect.scoped))

  it.effect("remove closes that server's sessions and wakes its waiters with PoolClosedError", () =>
    Effect.gen(function*() {
      const { pool, state, liveOf } = yield* setup({ maxConnections: 1, maxRequestsPerConnection: 1 })
      yield* pool.add("a", cfg)
      yield* pool.add("b", cfg)
      yield* pool.use("b", () => Effect.void)
      const held = yield* hold(pool, "a")
      const waiter = yield* Effect.forkChild(Effect.flip(pool.use("a", () => Effect.void)))
      yield* settle
      yield* pool.remove("a")
      const e = yield* Fiber.join(waiter)
      assert.strictEqual(e._tag, "PoolClosedError")
      assert.strictEqual(liveOf("a").length, 0)
      assert.strictEqual(liveOf("b").length, 1)
      assert.deepStrictEqual(yield* pool.list, ["b"])
      yield* held.release // releasing after remove is harmless
      const unknown = yield* Effect.flip(pool.use("a", () => Effect.void))
      assert.strictEqual(unknown._tag, "UnknownServerError")
      assert.strictEqual(state.created - state.closed, 1)
    }).pipe(Effect.scoped))

  it.effect("remove during a connect: remove waits for the connect to end, closes its session, the waiter gets PoolClosedError", () =>
    Effect.gen(function*() {
      const { pool, state, liveOf } = yield* setup()
      yield* pool.add("a", cfg)
      const gate = yield* Deferred.make<void>()
      state.gate = gate
      const waiter = yield* Effect.forkChild(Effect.flip(pool.use("a", () => Effect.void)))
      yield* settle
      assert.strictEqual(state.connecting, 1)
      assert.strictEqual((yield* pool.stats("a")).pending, 1)
      // The fake's connect is an uninterruptible acquire (as a spawn is): remove must wait for it to end.
      const removing = yield* Effect.forkChild(pool.remove("a"))
      yield* settle
      assert.isUndefined(removing.pollUnsafe())
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(removing)
      const e = yield* Fiber.join(waiter)
      assert.strictEqual(e._tag, "PoolClosedError")
      assert.strictEqual(state.connecting, 0)
      assert.strictEqual(liveOf("a").length, 0)
      assert.strictEqual(state.created, state.closed)
    }).pipe(Effect.scoped))

  it.effect("a waiter of a replaced config is served by the new config's sessions", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({ maxConnections: 1, maxRequestsPerConnection: 1, acquireTimeout: "1 minute" })
      yield* pool.add("a", cfg)
      const held = yield* hold(pool, "a")
      const waiter = yield* Effect.forkChild(pool.use("a", (c) => Effect.succeed(fakeId(c))))
      yield* settle
      yield* pool.add("a", { type: "stdio", command: "fake2" }, { maxConnections: 2 })
      const id = yield* Fiber.join(waiter)
      assert.notStrictEqual(id, fakeId(held.conn))
      assert.strictEqual(state.created, 2)
      yield* held.release
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).destroyed.replaced, 1)
      assert.strictEqual(state.live.size, 1)
    }).pipe(Effect.scoped))

  it.effect("add with an existing name replaces its config and drains the old sessions", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup()
      yield* pool.add("a", cfg)
      const held = yield* hold(pool, "a")
      yield* pool.add("a", { type: "stdio", command: "fake2" }, { maxConnections: 2 })
      const next = yield* pool.use("a", (c) => Effect.succeed(fakeId(c)))
      assert.notStrictEqual(next, fakeId(held.conn))
      assert.isTrue(state.live.has(fakeId(held.conn)))
      yield* held.release
      yield* settle
      assert.isFalse(state.live.has(fakeId(held.conn)))
      assert.strictEqual((yield* pool.stats("a")).destroyed.replaced, 1)
    }).pipe(Effect.scoped))

  it.effect("close ends every session, busy or idle, and wakes waiters with PoolClosedError", () =>
    Effect.gen(function*() {
      const fakes = makeFakes()
      const scope = yield* Scope.make()
      const pool = yield* ConnectionPool.make({ maxConnections: 2, maxRequestsPerConnection: 1 }, { connect: fakes.connect }).pipe(
        Scope.provide(scope)
      )
      yield* pool.add("a", cfg)
      yield* pool.add("b", cfg, { minIdle: 2 })
      const busy = yield* Effect.forkChild(Effect.exit(pool.use("a", () => Effect.never)))
      yield* Effect.forkChild(Effect.exit(pool.use("a", () => Effect.never)))
      const waiter = yield* Effect.forkChild(Effect.flip(pool.use("a", () => Effect.void)))
      yield* settle
      assert.strictEqual(fakes.state.live.size, 4)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(fakes.state.live.size, 0)
      assert.strictEqual(fakes.state.created, fakes.state.closed)
      const e = yield* Fiber.join(waiter)
      assert.strictEqual(e._tag, "PoolClosedError")
      const after = yield* Effect.flip(pool.use("a", () => Effect.void))
      assert.strictEqual(after._tag, "PoolClosedError")
      yield* Fiber.interrupt(busy)
    }))

  it.effect("gauges and counters are series per server", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup({ maxRequestsPerConnection: 1 })
      yield* pool.add("gauged", cfg)
      const held = yield* hold(pool, "gauged")
      yield* pool.use("gauged", () => Effect.void)
      const gauge = (state: string) =>
        Effect.map(Metric.value(Metric.withAttributes(ConnectionPool.metrics.connections, { server: "gauged", state })), (s) => s.value)
      assert.strictEqual(yield* gauge("total"), 2)
      assert.strictEqual(yield* gauge("active"), 1)
      assert.strictEqual(yield* gauge("idle"), 1)
      assert.strictEqual(yield* gauge("pending"), 0)
      const counter = (m: Metric.Counter<number>, attrs: Record<string, string> = {}) =>
        Effect.map(Metric.value(Metric.withAttributes(m, { server: "gauged", ...attrs })), (s) => s.count)
      assert.strictEqual(yield* counter(ConnectionPool.metrics.acquired), 2)
      assert.strictEqual(yield* counter(ConnectionPool.metrics.released), 1)
      assert.strictEqual(yield* counter(ConnectionPool.metrics.created), 2)
      yield* pool.invalidate("gauged", held.conn)
      yield* held.release
      assert.strictEqual(yield* counter(ConnectionPool.metrics.destroyed, { reason: "invalidated" }), 1)
    }).pipe(Effect.scoped))
})

describe("ConnectionPool: SessionHooks", () => {
  it.effect("connectOptions reach connect; onSession runs in the session's scope before it is lent", () =>
    Effect.gen(function*() {
      const fakes = makeFakes()
      const seen: Array<string> = []
      const options: Array<unknown> = []
      const connect: ConnectionPool.Connect = (name, config, opts) => {
        options.push(opts)
        return fakes.connect(name, config, opts)
      }
      const hooks: SessionHooksShape = {
        connectOptions: (server): ConnectOptions => ({ sdkOptions: { enforceStrictCapabilities: server === "a" } }),
        onSession: (server, _config, connection) =>
          Effect.andThen(
            Effect.sync(() => seen.push(`open ${server} ${fakeId(connection)}`)),
            Effect.addFinalizer(() => Effect.sync(() => seen.push(`close ${server} ${fakeId(connection)}`)))
          )
      }
      const scope = yield* Scope.make()
      const pool = yield* ConnectionPool.make({ pingAfterIdle: null }, { connect }).pipe(
        Scope.provide(scope),
        Effect.provideService(SessionHooks, hooks)
      )
      yield* pool.add("a", cfg)
      const lentAfterHook = yield* pool.use("a", (c) => Effect.sync(() => seen.includes(`open a ${fakeId(c)}`)))
      assert.isTrue(lentAfterHook)
      assert.deepStrictEqual(options, [{ sdkOptions: { enforceStrictCapabilities: true } }])
      // the hook's scope is the session's: it closes with the session
      const id = yield* pool.use("a", (c) => Effect.succeed(fakeId(c)))
      yield* pool.invalidate("a", fakes.state.live.get(id)!)
      yield* settle
      assert.deepStrictEqual(seen, [`open a ${id}`, `close a ${id}`])
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("with no SessionHooks provided the pool opens plain sessions", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup()
      yield* pool.add("a", cfg)
      yield* pool.use("a", () => Effect.void)
      assert.strictEqual(state.created, 1)
    }).pipe(Effect.scoped))
})

describe("ConnectionPool: balance", () => {
  const spread = (balance: "least-loaded" | "fill-first") =>
    Effect.gen(function*() {
      const { pool } = yield* setup({ maxConnections: 3, minIdle: 3, maxRequestsPerConnection: 8, balance })
      yield* pool.add("a", cfg)
      yield* settle
      assert.strictEqual((yield* pool.stats("a")).idle, 3)
      const held = []
      for (let i = 0; i < 6; i++) held.push(yield* hold(pool, "a"))
      const perConn = new Map<number, number>()
      for (const h of held) perConn.set(fakeId(h.conn), (perConn.get(fakeId(h.conn)) ?? 0) + 1)
      for (const h of held) yield* h.release
      return [...perConn.values()].sort()
    }).pipe(Effect.scoped)

  it.effect("least-loaded (the default) spreads borrowers over the open sessions", () =>
    Effect.map(spread("least-loaded"), (counts) => assert.deepStrictEqual(counts, [2, 2, 2])))

  it.effect("fill-first (Effect Pool's order) fills one session before the next", () =>
    Effect.map(spread("fill-first"), (counts) => assert.deepStrictEqual(counts, [6])))
})

describe("ConnectionPool: the child cap holds while Effect's Pool replaces a lent session", () => {
  it.effect("invalidating a lent session: its replacement connects only after the old child exited", () =>
    Effect.gen(function*() {
      const { pool, state, liveOf } = yield* setup({ maxConnections: 1, maxRequestsPerConnection: 1, acquireTimeout: "1 minute" })
      yield* pool.add("a", cfg)
      const held = yield* hold(pool, "a")
      yield* pool.invalidate("a", held.conn)
      const waiter = yield* Effect.forkChild(pool.use("a", (c) => Effect.succeed(fakeId(c))))
      yield* settle
      // Effect's Pool wants a replacement now; the permit keeps it from connecting while the old child lives
      assert.strictEqual(state.created, 1)
      assert.strictEqual(liveOf("a").length, 1)
      assert.strictEqual((yield* pool.stats("a")).pending, 1)
      yield* held.release
      const id = yield* Fiber.join(waiter)
      assert.notStrictEqual(id, fakeId(held.conn))
      assert.strictEqual(state.peakLivePerServer.get("a"), 1)
      assert.strictEqual((yield* pool.stats("a")).destroyed.invalidated, 1)
    }).pipe(Effect.scoped))

  it.effect("a lent session expiring under load never takes the server past maxConnections children", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* setup({
        maxConnections: 2,
        maxRequestsPerConnection: 1,
        maxLifetime: "10 seconds",
        lifetimeJitter: 0,
        acquireTimeout: "1 hour"
      })
      yield* pool.add("a", cfg)
      const fibers = yield* Effect.forEach(
        Array.from({ length: 12 }),
        () => Effect.forkChild(pool.use("a", () => Effect.sleep("4 seconds")))
      )
      for (let i = 0; i < 40; i++) {
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      yield* Fiber.joinAll(fibers)
      assert.isAbove((yield* pool.stats("a")).destroyed.lifetime, 0)
      assert.strictEqual(state.peakLivePerServer.get("a"), 2)
    }).pipe(Effect.scoped))
})
