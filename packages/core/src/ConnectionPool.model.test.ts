/**
 * Model-based test of ConnectionPool (fast-check `fc.commands`): random acquire, use, release, interrupt,
 * crash and time advance over three servers with fake sessions and a TestClock. After every command:
 * - never more live sessions per server than its max;
 * - the pool's outstanding leases equal the holders the model knows of;
 * - no waiter is starved while capacity is free (a server with waiters has no session with a free slot
 *   and no room to start one, unless one is starting).
 * - every session lent was open when lent (`isOpen()`) and is not one the model knows crashed;
 * - a session that announced its crash (a dead child) is closed at once, lent or not;
 * - the pool's `created` equals the sessions the fakes made for the server.
 * At the end: every holder released → active 0; pool closed → every session created was closed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as ConnectionPool from "./ConnectionPool.ts"
import type { McpConnection } from "./McpClient.ts"
import { McpConnectError } from "./McpError.ts"

const SERVERS = ["a", "b", "c"] as const
type Server = (typeof SERVERS)[number]

interface Fake {
  readonly id: number
  readonly server: string
  open: boolean
  readonly closed: Deferred.Deferred<string>
}

interface Holder {
  readonly server: Server
  readonly fiber: Fiber.Fiber<unknown, unknown>
  readonly release: Deferred.Deferred<void>
  acquired: boolean
  /** The fake lent to this holder, and whether it was open (by `isOpen()` and by the model) when lent. */
  lent: { readonly id: number; readonly open: boolean; readonly knownDead: boolean } | undefined
}

interface Real {
  readonly pool: ConnectionPool.ConnectionPoolShape
  readonly scope: Scope.Closeable
  readonly clock: TestClock.TestClock
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>
  readonly live: Map<number, Fake>
  readonly holders: Array<Holder>
  /** Every holder ever started (released ones that were still waiting finish later). */
  readonly all: Array<Holder>
  readonly max: Record<Server, number>
  readonly concurrency: Record<Server, number>
  created: number
  closed: number
  failNext: number
  readonly madeBy: Record<Server, number>
  readonly fakes: Map<number, Fake>
}

/**
 * What the model knows independently of the pool: which sessions crashed (by id), and which of them
 * announced it (a stdio child's exit).
 */
interface Model {
  readonly dead: Set<number>
  readonly loud: Set<number>
}

const settle = Effect.gen(function*() {
  for (let i = 0; i < 30; i++) yield* Effect.yieldNow
})

const liveOf = (real: Real, server: string) => {
  let n = 0
  for (const f of real.live.values()) if (f.server === server) n++
  return n
}

const checkInvariants = async (model: Model, real: Real) => {
  await real.run(settle)
  for (const id of model.loud) assert.isFalse(real.live.has(id), `session ${id} crashed loudly but is still open`)
  for (const h of real.all) {
    if (h.lent === undefined) continue
    assert.isTrue(h.lent.open, `${h.server}: session ${h.lent.id} was lent while isOpen() was false`)
    assert.isFalse(h.lent.knownDead, `${h.server}: session ${h.lent.id} was lent after it crashed`)
  }
  for (const s of SERVERS) {
    const stats = await real.run(real.pool.stats(s))
    // never more than max per server (live fakes: created and not yet closed)
    assert.isAtMost(liveOf(real, s), real.max[s], `live sessions of ${s}`)
    assert.isAtMost(stats.total + stats.starting, real.max[s], `total+starting of ${s}`)
    // leases = holders that hold a session
    const holding = real.all.filter((h) => h.server === s && h.acquired).length
    assert.strictEqual(stats.leases, holding, `leases of ${s}`)
    // no starvation while capacity is free
    if (stats.pending > 0) {
      const room = stats.total + stats.starting < real.max[s]
      const freeSlot = stats.leases < stats.total * real.concurrency[s] && stats.total - stats.active > 0
      assert.isFalse(room && stats.starting === 0, `${s}: waiters while a session could be started`)
      assert.isFalse(freeSlot, `${s}: waiters while an idle session is open`)
    }
    assert.strictEqual(stats.created, real.madeBy[s], `${s}: sessions created`)
  }
}

class Acquire implements fc.AsyncCommand<Model, Real> {
  readonly server: Server
  constructor(server: Server) {
    this.server = server
  }
  check = () => true
  async run(model: Model, real: Real) {
    const release = Deferred.makeUnsafe<void>()
    const holder: Holder = { server: this.server, fiber: undefined as never, release, acquired: false, lent: undefined }
    const fiber = Effect.runFork(
      real.pool.use(this.server, (conn) =>
        Effect.andThen(
          Effect.sync(() => {
            const id = (conn as unknown as { id: number }).id
            holder.acquired = true
            holder.lent = { id, open: conn.isOpen(), knownDead: model.dead.has(id) }
          }),
          Deferred.await(release)
        ).pipe(Effect.ensuring(Effect.sync(() => {
          holder.acquired = false
        })))).pipe(Effect.provideService(Clock.Clock, real.clock))
    )
    ;(holder as { fiber: Fiber.Fiber<unknown, unknown> }).fiber = fiber
    real.holders.push(holder)
    real.all.push(holder)
    await checkInvariants(model, real)
  }
  toString = () => `acquire(${this.server})`
}

class Release implements fc.AsyncCommand<Model, Real> {
  readonly index: number
  constructor(index: number) {
    this.index = index
  }
  check = () => true
  async run(model: Model, real: Real) {
    if (real.holders.length === 0) return
    const [h] = real.holders.splice(this.index % real.holders.length, 1)
    Deferred.doneUnsafe(h!.release, Effect.void)
    // a holder still waiting gives the session back as soon as it gets one
    if (h!.acquired) await real.run(Effect.asVoid(Fiber.await(h!.fiber)))
    await checkInvariants(model, real)
  }
  toString = () => `release(${this.index})`
}

class Interrupt implements fc.AsyncCommand<Model, Real> {
  readonly index: number
  constructor(index: number) {
    this.index = index
  }
  check = () => true
  async run(model: Model, real: Real) {
    if (real.holders.length === 0) return
    const [h] = real.holders.splice(this.index % real.holders.length, 1)
    await real.run(Fiber.interrupt(h!.fiber))
    await checkInvariants(model, real)
  }
  toString = () => `interrupt(${this.index})`
}

class Crash implements fc.AsyncCommand<Model, Real> {
  readonly server: Server
  readonly pick: number
  readonly quiet: boolean
  constructor(server: Server, pick: number, quiet: boolean) {
    this.server = server
    this.pick = pick
    this.quiet = quiet
  }
  check = () => true
  async run(model: Model, real: Real) {
    const fakes = Array.from(real.live.values()).filter((f) => f.server === this.server && f.open)
    if (fakes.length === 0) return
    const f = fakes[this.pick % fakes.length]!
    f.open = false
    model.dead.add(f.id)
    // quiet: the session is found broken only when looked at (HTTP); loud: it announces its close (stdio)
    if (!this.quiet) {
      model.loud.add(f.id)
      Deferred.doneUnsafe(f.closed, Effect.succeed("crashed"))
    }
    await checkInvariants(model, real)
  }
  toString = () => `crash(${this.server}, ${this.pick}, ${this.quiet ? "quiet" : "loud"})`
}

class FailNextConnect implements fc.AsyncCommand<Model, Real> {
  check = () => true
  async run(model: Model, real: Real) {
    real.failNext++
    await checkInvariants(model, real)
  }
  toString = () => "failNextConnect"
}

class Advance implements fc.AsyncCommand<Model, Real> {
  readonly ms: number
  constructor(ms: number) {
    this.ms = ms
  }
  check = () => true
  async run(model: Model, real: Real) {
    await real.run(real.clock.adjust(this.ms))
    await checkInvariants(model, real)
  }
  toString = () => `advance(${this.ms})`
}

const server = fc.constantFrom(...SERVERS)
const commands = fc.commands(
  [
    server.map((s) => new Acquire(s)),
    server.map((s) => new Acquire(s)),
    server.map((s) => new Acquire(s)),
    server.map((s) => new Acquire(s)),
    fc.nat(50).map((i) => new Release(i)),
    fc.nat(50).map((i) => new Release(i)),
    fc.nat(50).map((i) => new Interrupt(i)),
    fc.tuple(server, fc.nat(10), fc.boolean()).map(([s, p, q]) => new Crash(s, p, q)),
    fc.constant(new FailNextConnect()),
    fc.integer({ min: 1, max: 90_000 }).map((ms) => new Advance(ms))
  ],
  { maxCommands: 80, size: "large" }
)

const setup = async (
  max: Record<Server, number>,
  concurrency: Record<Server, number>,
  minIdle: number,
  balance: "least-loaded" | "fill-first"
): Promise<Real> => {
  const scope = Scope.makeUnsafe()
  const clock = await Effect.runPromise(TestClock.make().pipe(Scope.provide(scope)))
  const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect.pipe(Effect.provideService(Clock.Clock, clock)))
  const real = {
    clock,
    run,
    scope,
    live: new Map<number, Fake>(),
    holders: [],
    all: [],
    max,
    concurrency,
    created: 0,
    closed: 0,
    failNext: 0,
    madeBy: { a: 0, b: 0, c: 0 },
    fakes: new Map()
  } as unknown as Real
  const connect: ConnectionPool.Connect = (name) =>
    Effect.acquireRelease(
      Effect.andThen(Effect.yieldNow, () => {
        if (real.failNext > 0) {
          real.failNext--
          return Effect.fail(new McpConnectError({ server: name, message: "fake failure", stderrTail: "" }))
        }
        const id = ++real.created
        const fake: Fake = { id, server: name, open: true, closed: Deferred.makeUnsafe() }
        real.live.set(id, fake)
        real.madeBy[name as Server]++
        const conn = {
          name,
          isOpen: () => fake.open,
          closed: Deferred.await(fake.closed),
          ping: () => (fake.open ? Effect.void : Effect.die("dead")),
          id
        } as unknown as McpConnection
        return Effect.succeed(conn)
      }),
      (conn) =>
        Effect.sync(() => {
          const id = (conn as unknown as { id: number }).id
          const f = real.live.get(id)
          if (f !== undefined) f.open = false
          if (real.live.delete(id)) real.closed++
        })
    )
  const pool = await run(
    ConnectionPool.make(
      {
        maxLifetime: "3 minutes",
        idleTimeout: "1 minute",
        acquireTimeout: "2 minutes",
        pingAfterIdle: "30 seconds",
        minIdle,
        balance,
        housekeepingInterval: "5 seconds"
      },
      { connect }
    ).pipe(Scope.provide(scope))
  )
  ;(real as { pool: ConnectionPool.ConnectionPoolShape }).pool = pool
  for (const s of SERVERS) {
    await run(pool.add(s, { type: "stdio", command: "fake" }, { maxConnections: max[s], maxRequestsPerConnection: concurrency[s] }))
  }
  return real
}

const perServer = (arb: fc.Arbitrary<number>) => fc.record({ a: arb, b: arb, c: arb })

describe("ConnectionPool: model-based", () => {
  it("random acquire/use/release/interrupt/crash/time over three servers keeps every invariant", async () => {
    await fc.assert(
      fc.asyncProperty(
        perServer(fc.integer({ min: 1, max: 3 })),
        perServer(fc.integer({ min: 1, max: 2 })),
        fc.integer({ min: 0, max: 1 }),
        fc.constantFrom("least-loaded" as const, "fill-first" as const),
        commands,
        async (max, concurrency, minIdle, balance, cmds) => {
          const real = await setup(max, concurrency, minIdle, balance)
          try {
            await fc.asyncModelRun(() => ({ model: { dead: new Set<number>(), loud: new Set<number>() }, real }), cmds)
            // release every holder: active returns to 0
            for (const h of real.all) {
              Deferred.doneUnsafe(h.release, Effect.void)
              if (h.acquired) await real.run(Effect.asVoid(Fiber.await(h.fiber)))
              else await real.run(Fiber.interrupt(h.fiber))
            }
            await real.run(settle)
            for (const s of SERVERS) {
              const stats = await real.run(real.pool.stats(s))
              assert.strictEqual(stats.leases, 0)
              assert.strictEqual(stats.active, 0)
              assert.strictEqual(stats.pending, 0)
            }
          } finally {
            await real.run(Scope.close(real.scope, Exit.void))
          }
          // every session created was closed
          assert.strictEqual(real.live.size, 0)
          assert.strictEqual(real.created, real.closed)
        }
      ),
      { numRuns: 150 }
    )
  })
})
