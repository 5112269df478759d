/**
 * `ConnectionPool`: a keyed pool of live MCP sessions ({@link McpConnection}s), one sub-pool per server.
 * Spawning and initializing a stdio server costs hundreds of milliseconds; borrowing a warm session costs
 * microseconds.
 *
 * ```ts
 * import { Effect } from "effect"
 * import { ConnectionPool } from "@keel/core/ConnectionPool"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* ConnectionPool
 *   yield* pool.add("github", { type: "stdio", command: "node", args: ["server.js"] }, { maxConnections: 4 })
 *   // borrow, use, give back: on success, failure and interruption alike
 *   const result = yield* pool.use("github", (c) => c.callTool("search", { q: "effect" }))
 *   // or hold a session for the rest of a scope
 *   const session = yield* pool.get("github")
 *   console.log(yield* pool.stats("github"))
 * }).pipe(Effect.scoped, Effect.provide(ConnectionPool.layer({ maxConnections: 10, idleTimeout: "2 minutes" })))
 * ```
 *
 * ## The seed tutorial's names
 *
 * | seed (Go)                        | Keel                                                                   |
 * | -------------------------------- | ---------------------------------------------------------------------- |
 * | `NewConnectionPool(cfg)`         | `ConnectionPool.layer(config)` / `ConnectionPool.make(config)`          |
 * | `pool.Acquire(ctx, name, cfg)`   | `pool.add(name, cfg)` once, then `pool.get(name)` (scoped) or `pool.use` |
 * | `pool.Release(conn, name)`       | automatic: closing the scope of `get`, or the end of `use`             |
 * | `pool.GetMetrics()`              | `pool.stats(name)`, and the `keel_pool_*` metrics (`metrics`)          |
 * | `MaxOpenConns` (10)              | `maxConnections` (10)                                                  |
 * | `MaxIdleConns` (5)               | `maxIdle` (a cap on idle sessions, as in Go; default: none), and `minIdle` (a floor kept warm, HikariCP's `minimumIdle`; default 0) |
 * | `ConnMaxLifetime` (5 min)        | `maxLifetime` (5 min), staggered by `lifetimeJitter` (10 %)             |
 * | `ConnMaxIdleTime` (2 min)        | `idleTimeout` (2 min)                                                  |
 * | hard-coded 30 s wait             | `acquireTimeout` (30 s) → typed {@link PoolTimeoutError}               |
 *
 * ## Semantics
 *
 * - **Multiplexing.** One MCP session carries many concurrent JSON-RPC requests, so a session is lent to up
 *   to `maxRequestsPerConnection` borrowers at once (Effect `Pool`'s `concurrency`). A borrow goes to the
 *   least-loaded open session; a new one is started only when every session is at that limit, and never
 *   beyond `maxConnections` (sessions being started and sessions draining count towards it).
 * - **Fairness.** Waiters are served first come, first served; a new borrower never overtakes a waiter.
 *   A session is handed to a waiter inside the pool's own state step, and a waiter that is interrupted or
 *   times out at that moment gives it back, so a hand-off never leaks a session.
 * - **Health.** A session whose child died or whose HTTP session broke (`isOpen()` false) is never handed
 *   out: it is destroyed when seen (a watcher per session sees it at once) and replaced on demand. After
 *   `pingAfterIdle` without use, a borrow pings the session first and replaces it if the ping fails.
 * - **Lifetime.** Each session's lifetime is `maxLifetime` minus a random share of up to `lifetimeJitter`
 *   of it, so sessions created together do not all expire together. An expired session is not handed out
 *   again; it is closed as soon as its last borrower returns it. Idle sessions above `minIdle` are closed
 *   after `idleTimeout`. A housekeeping fiber applies both every `housekeepingInterval` and tops the pool
 *   up to `minIdle` (which also paces retries against a server that fails to start).
 * - **Start-up stampede.** At most `maxConcurrentConnects` sessions are being started at once across all
 *   servers (a semaphore around connect), so 95 servers do not spawn 95 children at once.
 * - **Failures.** A failed connect fails the oldest waiter with its `McpConnectError`, and every waiter if
 *   the server has no session and no other connect under way, so callers hear about a broken server at
 *   once instead of at their timeout.
 * - **Close.** Closing the pool (its scope), or `remove(name)` for one server, wakes every waiter with
 *   {@link PoolClosedError}, interrupts connects under way, and closes every session, busy or not, ending
 *   each child process before it returns.
 *
 * ## Why not Effect's `Pool` (in an `RcMap`)
 *
 * Effect 4's `Pool` was the first choice; this module keeps its semantics (scoped leases, `concurrency`,
 * invalidation, waiters woken in order) but owns its state, because `Pool` cannot express: a minimum of
 * *idle* sessions (its `min` is a minimum total size); a maximum lifetime *and* an idle timeout together
 * (one TTL strategy per pool) with per-session jitter; a typed error for waiters at shutdown (they are
 * interrupted); knowing whether a borrow waited (for a wait-time histogram that records only real waits,
 * unlike the seed); a health check before hand-out; and replacing a server's config in place. Servers are
 * added and removed explicitly, so a plain `Map` replaces `RcMap`'s reference counting.
 *
 * Metrics are callback series read from the pool's own counters at scrape time (as in `KeyedCache`), so
 * a warm borrow costs a few integer increments and no metric update.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Duration, Effect, Exit, Fiber, Layer, Metric, Schema, Scope, Semaphore } from "effect"
import { type ConnectOptions, McpClient, type McpConnection } from "./McpClient.ts"
import { McpConnectError } from "./McpError.ts"
import { configError, type McpConfigError, type ServerConfig } from "./ServerConfig.ts"

// ---------------------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------------------

const millis = (ms: number) => Schema.DurationFromMillis.pipe(Schema.withDecodingDefaultKey(Effect.succeed(ms)))
const int = (min: number, def: number) =>
  Schema.Int.check(Schema.isGreaterThanOrEqualTo(min)).pipe(Schema.withDecodingDefaultKey(Effect.succeed(def)))

/**
 * Per-server pool settings (each can be overridden per server in {@link ConnectionPoolShape.add}):
 *
 * | field                      | default | meaning                                                                 |
 * | -------------------------- | ------- | ----------------------------------------------------------------------- |
 * | `maxConnections`           | 10      | sessions per server, open or starting (seed `MaxOpenConns`)              |
 * | `minIdle`                  | 0       | idle sessions kept warm (HikariCP `minimumIdle`)                         |
 * | `maxIdle`                  | none    | idle sessions kept on release; more are closed (seed `MaxIdleConns`)     |
 * | `maxLifetime`              | 5 min   | a session's age limit; 0 = none (seed `ConnMaxLifetime`)                 |
 * | `lifetimeJitter`           | 0.1     | up to this share of `maxLifetime` is taken off each session, at random   |
 * | `idleTimeout`              | 2 min   | idle sessions above `minIdle` are closed after this; 0 = never (seed `ConnMaxIdleTime`) |
 * | `acquireTimeout`           | 30 s    | longest wait for a session → {@link PoolTimeoutError}                    |
 * | `maxRequestsPerConnection` | 32      | borrowers sharing one session at once (MCP multiplexes requests)         |
 * | `pingAfterIdle`            | 30 s    | ping a session on borrow once it has been idle this long; `null` = never |
 * | `pingTimeout`              | 5 s     | how long that ping may take                                              |
 * | `leakDetectionThreshold`   | `null`  | warn (log + `suspectedLeaks`) when a `get` lease is held longer; `null` = off |
 *
 * Durations are encoded as milliseconds.
 *
 * @since 0.1.0
 * @category config
 */
export const PoolSettings = Schema.Struct({
  maxConnections: int(1, 10),
  minIdle: int(0, 0),
  maxIdle: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  maxLifetime: millis(300_000),
  lifetimeJitter: Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 })).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(0.1))
  ),
  idleTimeout: millis(120_000),
  acquireTimeout: millis(30_000),
  maxRequestsPerConnection: int(1, 32),
  pingAfterIdle: Schema.NullOr(Schema.DurationFromMillis).pipe(Schema.withDecodingDefaultKey(Effect.succeed(30_000))),
  pingTimeout: millis(5_000),
  leakDetectionThreshold: Schema.NullOr(Schema.DurationFromMillis).pipe(Schema.withDecodingDefaultKey(Effect.succeed(null)))
})

/** The decoded per-server settings. @since 0.1.0 @category config */
export type PoolSettings = typeof PoolSettings.Type

/**
 * Pool config: every {@link PoolSettings} field (the default for all servers) plus the pool-wide
 *
 * | field                   | default | meaning                                                           |
 * | ----------------------- | ------- | ----------------------------------------------------------------- |
 * | `maxConcurrentConnects` | 4       | sessions being started at once, across all servers                |
 * | `housekeepingInterval`  | 1 s     | how often lifetime, idle timeout, health and `minIdle` are applied |
 *
 * @since 0.1.0
 * @category config
 */
export const ConnectionPoolConfig = Schema.Struct({
  ...PoolSettings.fields,
  maxConcurrentConnects: int(1, 4),
  housekeepingInterval: millis(1_000)
})

/** The decoded pool config. @since 0.1.0 @category config */
export type ConnectionPoolConfig = typeof ConnectionPoolConfig.Type

/** Every default applied. @since 0.1.0 @category config */
export const defaultConfig: ConnectionPoolConfig = Schema.decodeUnknownSync(ConnectionPoolConfig)({})

type DurationKey =
  | "maxLifetime"
  | "idleTimeout"
  | "acquireTimeout"
  | "pingAfterIdle"
  | "pingTimeout"
  | "leakDetectionThreshold"
  | "housekeepingInterval"

type Loosen<T> = {
  readonly [K in keyof T]?: K extends DurationKey ? (null extends T[K] ? Duration.Input | null : Duration.Input)
    : Exclude<T[K], undefined>
}

/**
 * Per-server overrides as written by hand: any {@link PoolSettings} field, durations as `Duration.Input`
 * (`"2 minutes"`, `Duration.seconds(5)`, or milliseconds).
 *
 * @since 0.1.0
 * @category config
 */
export type PoolSettingsInput = Loosen<typeof PoolSettings.Encoded>

/**
 * The pool config as written by hand: any {@link ConnectionPoolConfig} field, durations as `Duration.Input`.
 *
 * @since 0.1.0
 * @category config
 */
export type ConnectionPoolConfigInput = Loosen<typeof ConnectionPoolConfig.Encoded>

const DURATION_KEYS: ReadonlySet<string> = new Set<DurationKey>([
  "maxLifetime",
  "idleTimeout",
  "acquireTimeout",
  "pingAfterIdle",
  "pingTimeout",
  "leakDetectionThreshold",
  "housekeepingInterval"
])

/** Durations given as `Duration.Input` become milliseconds, the Schema's encoded form. */
const normalize = (input: object): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined) continue
    out[k] = DURATION_KEYS.has(k) && v !== null && typeof v !== "number"
      ? Duration.toMillis(Duration.fromInputUnsafe(v as Duration.Input))
      : v
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/**
 * No session of `server` became available within `acquireTimeout`. Carries the sub-pool's state at that
 * moment, for diagnosis (as HikariCP's "request timed out ... (total=, active=, idle=, waiting=)").
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolTimeoutError extends Schema.TaggedError<PoolTimeoutError>()("PoolTimeoutError", {
  server: Schema.String,
  timeoutMs: Schema.Number,
  total: Schema.Number,
  active: Schema.Number,
  pending: Schema.Number,
  message: Schema.String
}) {}

/**
 * The pool was closed, or `server` was removed from it, before a session could be handed out.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolClosedError extends Schema.TaggedError<PoolClosedError>()("PoolClosedError", {
  server: Schema.String,
  message: Schema.String
}) {}

/**
 * `server` is not in the pool; `known` lists the servers that are.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolUnknownServerError extends Schema.TaggedError<PoolUnknownServerError>()("PoolUnknownServerError", {
  server: Schema.String,
  known: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/**
 * What borrowing a session can fail with: a timeout, a closed pool, an unknown server, or the server
 * failing to start (`McpConnectError`).
 *
 * @since 0.1.0
 * @category errors
 */
export type PoolError = PoolTimeoutError | PoolClosedError | PoolUnknownServerError | McpConnectError

// ---------------------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------------------

/**
 * Why a session was closed: `lifetime` (reached `maxLifetime`), `idle` (`idleTimeout`), `broken` (child
 * died / HTTP session broke), `ping` (failed the borrow ping), `excess` (above `maxIdle`), `replaced` (the
 * server's config changed), `invalidated` (by {@link ConnectionPoolShape.invalidate}), `removed`, `closed`.
 *
 * @since 0.1.0
 * @category metrics
 */
export type DestroyReason =
  | "lifetime"
  | "idle"
  | "broken"
  | "ping"
  | "excess"
  | "replaced"
  | "invalidated"
  | "removed"
  | "closed"

const DESTROY_REASONS: ReadonlyArray<DestroyReason> = [
  "lifetime",
  "idle",
  "broken",
  "ping",
  "excess",
  "replaced",
  "invalidated",
  "removed",
  "closed"
]

/**
 * The metrics every pool reports into, each with attribute `server` (read one series with
 * `Metric.value(Metric.withAttributes(metrics.connections, { server: "github", state: "idle" }))`):
 *
 * | metric                               | kind      | attributes      | seed name                        |
 * | ------------------------------------ | --------- | --------------- | -------------------------------- |
 * | `keel_pool_connections`              | gauge     | `state`: total, active, idle, pending, starting | `pool_connections_total/active/idle` |
 * | `keel_pool_acquired`                 | counter   |                 |                                  |
 * | `keel_pool_released`                 | counter   |                 |                                  |
 * | `keel_pool_connections_created`      | counter   |                 |                                  |
 * | `keel_pool_connections_destroyed`    | counter   | `reason`        |                                  |
 * | `keel_pool_acquire_timeouts`         | counter   |                 |                                  |
 * | `keel_pool_acquire_duration_seconds` | histogram |                 | `pool_acquire_duration_seconds` (waits only) |
 *
 * `pending` counts borrowers waiting; `active` sessions lent to at least one borrower. The histogram
 * records only borrows that had to wait, in seconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  connections: Metric.gauge("keel_pool_connections", { description: "Pooled MCP sessions by state (total, active, idle, starting) and waiting borrowers (pending)" }),
  acquired: Metric.counter("keel_pool_acquired", { description: "Sessions lent to borrowers", incremental: true }),
  released: Metric.counter("keel_pool_released", { description: "Sessions given back by borrowers", incremental: true }),
  created: Metric.counter("keel_pool_connections_created", { description: "Sessions started", incremental: true }),
  destroyed: Metric.counter("keel_pool_connections_destroyed", { description: "Sessions closed, by reason", incremental: true }),
  acquireTimeouts: Metric.counter("keel_pool_acquire_timeouts", { description: "Borrowers that gave up after acquireTimeout", incremental: true }),
  acquireDuration: Metric.histogram("keel_pool_acquire_duration_seconds", {
    description: "How long borrowers waited for a session (only borrows that waited)",
    boundaries: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
  })
} as const

/**
 * A plain read of one server's sub-pool (the seed's `GetMetrics()`).
 *
 * - `total`: sessions open (including draining ones), `active`: lent to ≥ 1 borrower, `idle`: lent to
 *   none, `starting`: being connected, `pending`: borrowers waiting, `leases`: borrows outstanding.
 * - counters since the server was added: `acquired`, `released`, `created`, `destroyed` by reason,
 *   `timeouts`, `waits` (borrows that had to wait), `connectFailures`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolStats {
  readonly server: string
  readonly total: number
  readonly active: number
  readonly idle: number
  readonly starting: number
  readonly pending: number
  readonly leases: number
  readonly maxConnections: number
  readonly acquired: number
  readonly released: number
  readonly created: number
  readonly destroyed: Readonly<Record<DestroyReason, number>>
  readonly timeouts: number
  readonly waits: number
  readonly connectFailures: number
  /** `get` leases held longer than `leakDetectionThreshold` (each counted once). */
  readonly suspectedLeaks: number
}

// ---------------------------------------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------------------------------------

/**
 * How the pool opens a session; `McpClient.connect` unless replaced (tests inject fakes).
 *
 * @since 0.1.0
 * @category models
 */
export type Connect = (
  name: string,
  config: ServerConfig,
  options?: ConnectOptions
) => Effect.Effect<McpConnection, McpConnectError, Scope.Scope>

/**
 * Options of {@link make} that are not data: `connect` (default `McpClient.connect`) and the
 * `connectOptions` passed to it for every session.
 *
 * @since 0.1.0
 * @category config
 */
export interface MakeOptions {
  readonly connect?: Connect | undefined
  readonly connectOptions?: ConnectOptions | undefined
}

/**
 * The pool's operations.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionPoolShape {
  /** The decoded pool-wide config. */
  readonly config: ConnectionPoolConfig
  /**
   * Adds a server (`overrides` replace the pool's settings for it), starting `minIdle` sessions in the
   * background. Adding a name again replaces its config: its sessions are drained and new ones use the
   * new config.
   */
  readonly add: (name: string, server: ServerConfig, overrides?: PoolSettingsInput) => Effect.Effect<void, McpConfigError>
  /** Removes a server: its waiters get {@link PoolClosedError}; returns once its sessions are closed. */
  readonly remove: (name: string) => Effect.Effect<void, PoolUnknownServerError>
  /** The servers in the pool, in the order added. */
  readonly list: Effect.Effect<ReadonlyArray<string>>
  /** Borrows a session of `server` for the rest of the current scope (seed `Acquire`; release = scope end). */
  readonly get: (server: string) => Effect.Effect<McpConnection, PoolError, Scope.Scope>
  /** Borrows a session of `server` for the duration of `f`, returning it on success, failure or interruption. */
  readonly use: <A, E, R>(
    server: string,
    f: (connection: McpConnection) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | PoolError, R>
  /**
   * Marks a borrowed session as bad: it is not lent again and is closed once its borrowers return it.
   * (Sessions that closed by themselves are detected without this.)
   */
  readonly invalidate: (server: string, connection: McpConnection) => Effect.Effect<void>
  /** A plain read of one server's counters and gauges. */
  readonly stats: (server: string) => Effect.Effect<PoolStats, PoolUnknownServerError>
  /** Every server's stats, in the order added. */
  readonly statsAll: Effect.Effect<ReadonlyArray<PoolStats>>
  /**
   * Pings the server's open sessions without leasing them: idle clocks are left alone (a health check
   * does not keep sessions from their idle timeout) and no session is started. A session that fails its
   * ping is retired (`destroyed.ping`). Returns how many answered and how many were pinged.
   */
  readonly healthCheck: (server: string) => Effect.Effect<{ readonly ok: number; readonly checked: number }, PoolUnknownServerError>
}

// ---------------------------------------------------------------------------------------------------------
// Internal state
// ---------------------------------------------------------------------------------------------------------

interface Resolved {
  readonly max: number
  readonly minIdle: number
  readonly maxIdle: number
  readonly lifetimeMs: number
  readonly jitter: number
  readonly idleMs: number
  readonly acquireTimeoutMs: number
  readonly concurrency: number
  readonly pingAfterMs: number
  readonly pingTimeoutMs: number
  readonly leakMs: number
}

const resolve = (s: PoolSettings): Resolved => {
  const ms = (d: Duration.Duration) => Duration.toMillis(d)
  const orNever = (n: number) => (n <= 0 ? Infinity : n)
  return {
    max: s.maxConnections,
    minIdle: Math.min(s.minIdle, s.maxConnections),
    maxIdle: s.maxIdle ?? Infinity,
    lifetimeMs: orNever(ms(s.maxLifetime)),
    jitter: s.lifetimeJitter,
    idleMs: orNever(ms(s.idleTimeout)),
    acquireTimeoutMs: ms(s.acquireTimeout),
    concurrency: s.maxRequestsPerConnection,
    pingAfterMs: s.pingAfterIdle === null ? Infinity : ms(s.pingAfterIdle),
    pingTimeoutMs: ms(s.pingTimeout),
    leakMs: s.leakDetectionThreshold === null ? Infinity : ms(s.leakDetectionThreshold)
  }
}

interface Conn {
  readonly connection: McpConnection
  readonly scope: Scope.Closeable
  readonly generation: number
  readonly expiresAt: number
  idleSince: number
  inUse: number
  /** Not lent again; closed when `inUse` reaches 0. */
  retiring: DestroyReason | undefined
  /** No longer in `sub.conns`; its scope is closing or closed. */
  destroyed: boolean
}

interface Waiter {
  conn: Conn | undefined
  error: PoolError | undefined
  resume: ((effect: Effect.Effect<Conn, PoolError>) => void) | undefined
}

interface Sub {
  readonly name: string
  config: ServerConfig
  r: Resolved
  generation: number
  readonly conns: Set<Conn>
  starting: number
  readonly waiters: Set<Waiter>
  readonly creating: Set<Fiber.Fiber<unknown, unknown>>
  readonly closing: Set<Fiber.Fiber<unknown, unknown>>
  removed: boolean
  leases: number
  acquired: number
  released: number
  created: number
  readonly destroyed: Record<DestroyReason, number>
  timeouts: number
  waits: number
  connectFailures: number
  /** Scoped (`get`) leases held now, with when each began, for leak detection. */
  readonly held: Set<{ readonly since: number; warned: boolean }>
  suspectedLeaks: number
  readonly registrations: Array<Metric.Registration>
  readonly waitHistogram: Metric.Metric<number, unknown>
}

const noop = (): void => {}

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

const toConnectError = (name: string, cause: Cause.Cause<unknown>): McpConnectError => {
  const found = Cause.findErrorOption(cause)
  if (found._tag === "Some" && found.value instanceof McpConnectError) return found.value
  return new McpConnectError({ server: name, message: `could not connect to ${name}: ${String(Cause.squash(cause))}`, stderrTail: "" })
}

// ---------------------------------------------------------------------------------------------------------
// make
// ---------------------------------------------------------------------------------------------------------

/**
 * Builds a pool owned by the current scope. Closing the scope closes every session (ending every child
 * process), interrupts connects under way and fails waiters with {@link PoolClosedError}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  input: ConnectionPoolConfigInput = {},
  options: MakeOptions = {}
): Effect.Effect<ConnectionPoolShape, McpConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const baseInput = normalize(input)
    const config = yield* Schema.decodeUnknownEffect(ConnectionPoolConfig)(baseInput).pipe(
      Effect.mapError((e) => configError("pool", e))
    )
    const connect: Connect = options.connect ?? McpClient.connect
    const connectOptions = options.connectOptions
    const scope = yield* Effect.scope
    const context = yield* Effect.context<never>()
    const clock = yield* Clock.Clock
    const now = (): number => clock.currentTimeMillisUnsafe()
    const run = Effect.runForkWith(context)
    const connectPermits = Semaphore.makeUnsafe(config.maxConcurrentConnects)
    const subs = new Map<string, Sub>()
    let closed = false

    // ---- metrics -------------------------------------------------------------------------------------

    const counter = (m: Metric.Counter<number>, attrs: Record<string, string>, read: () => number) =>
      Metric.registerUnsafe(Metric.withAttributes(m, attrs), context, {
        get: () => ({ count: read(), incremental: true }),
        update: noop,
        modify: noop
      })
    const gauge = (attrs: Record<string, string>, read: () => number) =>
      Metric.registerUnsafe(Metric.withAttributes(metrics.connections, attrs), context, {
        get: () => ({ value: read() }),
        update: noop,
        modify: noop
      })

    const countActive = (sub: Sub) => {
      let n = 0
      for (const c of sub.conns) if (c.inUse > 0) n++
      return n
    }
    const countIdle = (sub: Sub) => {
      let n = 0
      for (const c of sub.conns) if (c.inUse === 0 && c.retiring === undefined) n++
      return n
    }

    const register = (sub: Sub) => {
      const server = sub.name
      sub.registrations.push(
        gauge({ server, state: "total" }, () => sub.conns.size),
        gauge({ server, state: "active" }, () => countActive(sub)),
        gauge({ server, state: "idle" }, () => countIdle(sub)),
        gauge({ server, state: "pending" }, () => sub.waiters.size),
        gauge({ server, state: "starting" }, () => sub.starting),
        counter(metrics.acquired, { server }, () => sub.acquired),
        counter(metrics.released, { server }, () => sub.released),
        counter(metrics.created, { server }, () => sub.created),
        counter(metrics.acquireTimeouts, { server }, () => sub.timeouts),
        ...DESTROY_REASONS.map((reason) => counter(metrics.destroyed, { server, reason }, () => sub.destroyed[reason]))
      )
    }

    // ---- state steps (synchronous: each runs to completion without yielding) ---------------------------

    const track = (set: Set<Fiber.Fiber<unknown, unknown>>, fiber: Fiber.Fiber<unknown, unknown>) => {
      set.add(fiber)
      fiber.addObserver(() => set.delete(fiber))
    }

    /** Removes a session from its sub-pool and closes it in the background (tracked; close awaits it). */
    const destroy = (sub: Sub, c: Conn, reason: DestroyReason): void => {
      if (c.destroyed) return
      c.destroyed = true
      c.retiring ??= reason
      sub.conns.delete(c)
      sub.destroyed[reason]++
      track(sub.closing, run(Effect.uninterruptible(Scope.close(c.scope, Exit.void))))
    }

    /** Stops lending a session; closes it now if nobody holds it (or it is dead), else at last release. */
    const retire = (sub: Sub, c: Conn, reason: DestroyReason): void => {
      if (c.retiring !== undefined) return
      c.retiring = reason
      if (c.inUse === 0 || reason === "broken") destroy(sub, c, reason)
    }

    /** The least-loaded session that may be lent now, retiring dead and expired ones on the way. */
    const pick = (sub: Sub, t: number): Conn | undefined => {
      let best: Conn | undefined
      const limit = sub.r.concurrency
      for (const c of sub.conns) {
        if (c.retiring !== undefined || c.inUse >= limit) continue
        if (!c.connection.isOpen()) {
          retire(sub, c, "broken")
          continue
        }
        if (t >= c.expiresAt) {
          retire(sub, c, "lifetime")
          continue
        }
        if (best === undefined || c.inUse < best.inUse || (c.inUse === best.inUse && c.idleSince > best.idleSince)) {
          best = c
        }
      }
      return best
    }

    const lease = (sub: Sub, c: Conn): void => {
      c.inUse++
      sub.leases++
      sub.acquired++
    }

    const release = (sub: Sub, c: Conn): void => {
      c.inUse--
      sub.leases--
      sub.released++
      if (c.inUse === 0) c.idleSince = now()
      if (c.destroyed) {
        // already closing (broken, removed): nothing to give back
      } else if (c.retiring !== undefined) {
        if (c.inUse === 0) destroy(sub, c, c.retiring)
      } else if (!c.connection.isOpen()) {
        retire(sub, c, "broken")
      } else if (c.inUse === 0 && sub.r.maxIdle !== Infinity && countIdle(sub) > sub.r.maxIdle) {
        retire(sub, c, "excess")
      }
      if (sub.waiters.size > 0) dispatch(sub)
    }

    const wake = (w: Waiter, effect: Effect.Effect<Conn, PoolError>): void => {
      const resume = w.resume
      w.resume = undefined
      if (resume !== undefined) resume(effect)
    }

    const failWaiter = (sub: Sub, w: Waiter, error: PoolError): void => {
      sub.waiters.delete(w)
      w.error = error
      wake(w, Effect.fail(error))
    }

    /** Hands sessions to waiters in order, then starts the sessions still needed. */
    const dispatch = (sub: Sub): void => {
      if (sub.waiters.size === 0) return
      const t = now()
      for (const w of sub.waiters) {
        const c = pick(sub, t)
        if (c === undefined) break
        sub.waiters.delete(w)
        lease(sub, c)
        w.conn = c
        wake(w, Effect.succeed(c))
      }
      const unserved = sub.waiters.size
      if (unserved === 0 || closed || sub.removed) return
      const coming = sub.starting * sub.r.concurrency
      if (unserved <= coming) return
      const room = sub.r.max - sub.conns.size - sub.starting
      const n = Math.min(room, Math.ceil((unserved - coming) / sub.r.concurrency))
      for (let i = 0; i < n; i++) startConnect(sub)
    }

    const ensureMinIdle = (sub: Sub): void => {
      if (sub.r.minIdle === 0 || closed || sub.removed) return
      const deficit = sub.r.minIdle - countIdle(sub) - sub.starting
      const room = sub.r.max - sub.conns.size - sub.starting
      const n = Math.min(deficit, room)
      for (let i = 0; i < n; i++) startConnect(sub)
    }

    const onBroken = (sub: Sub, c: Conn): void => {
      if (c.destroyed) return
      c.retiring = "broken"
      destroy(sub, c, "broken")
      dispatch(sub)
      ensureMinIdle(sub)
    }

    /** Starts one session in the background (bounded by the global connect semaphore). */
    const startConnect = (sub: Sub): void => {
      sub.starting++
      const generation = sub.generation
      const config = sub.config
      const connScope = Scope.makeUnsafe()
      const attempt = connectPermits.withPermits(1)(
        Effect.suspend(() =>
          closed || sub.removed || generation !== sub.generation
            ? Effect.interrupt
            : Scope.provide(connect(sub.name, config, connectOptions), connScope)
        )
      )
      const settle = (exit: Exit.Exit<McpConnection, McpConnectError>): Effect.Effect<void> => {
        sub.starting--
        if (exit._tag === "Failure") {
          const close = Scope.close(connScope, exit)
          if (Cause.hasInterruptsOnly(exit.cause)) {
            dispatch(sub)
            return close
          }
          sub.connectFailures++
          const error = toConnectError(sub.name, exit.cause)
          if (sub.conns.size + sub.starting === 0) {
            for (const w of Array.from(sub.waiters)) failWaiter(sub, w, error)
          } else {
            const first = sub.waiters.values().next()
            if (first.done !== true) failWaiter(sub, first.value, error)
          }
          dispatch(sub)
          return close
        }
        sub.created++
        const t = now()
        const r = sub.r
        const c: Conn = {
          connection: exit.value,
          scope: connScope,
          generation,
          expiresAt: t + r.lifetimeMs * (1 - r.jitter * Math.random()),
          idleSince: t,
          inUse: 0,
          retiring: undefined,
          destroyed: false
        }
        sub.conns.add(c)
        if (closed || sub.removed) {
          destroy(sub, c, sub.removed && !closed ? "removed" : "closed")
          return Effect.void
        }
        if (generation !== sub.generation) {
          destroy(sub, c, "replaced")
          dispatch(sub)
          return Effect.void
        }
        dispatch(sub)
        // Watch for the session closing by itself (child died, HTTP session broke), to replace it at once.
        return Effect.asVoid(
          Effect.forkIn(Effect.flatMap(c.connection.closed, () => Effect.sync(() => onBroken(sub, c))), connScope)
        )
      }
      const fiber = run(Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.exit(restore(attempt)), (exit) => Effect.suspend(() => settle(exit)))
      ))
      track(sub.creating, fiber)
    }

    // ---- borrowing -----------------------------------------------------------------------------------

    const unknownServer = (server: string) =>
      Effect.fail(
        new PoolUnknownServerError({
          server,
          known: Array.from(subs.keys()),
          message: `unknown MCP server "${server}"; known servers: ${Array.from(subs.keys()).join(", ") || "(none)"}`
        })
      )

    const closedError = (sub: Sub) =>
      new PoolClosedError({
        server: sub.name,
        message: closed ? `the connection pool is closed (server ${sub.name})` : `server ${sub.name} was removed from the pool`
      })

    /** Waits in line for a session; the returned session is leased. No lease survives a failure. */
    const waitFor = (sub: Sub, timeoutMs: number, restore: Restore): Effect.Effect<Conn, PoolError> =>
      Effect.suspend(() => {
        const w: Waiter = { conn: undefined, error: undefined, resume: undefined }
        sub.waiters.add(w)
        dispatch(sub)
        if (w.conn !== undefined) return Effect.succeed(w.conn)
        if (w.error !== undefined) return Effect.fail(w.error)
        const wait = Effect.callback<Conn, PoolError>((resume) => {
          if (w.conn !== undefined) return resume(Effect.succeed(w.conn))
          if (w.error !== undefined) return resume(Effect.fail(w.error))
          w.resume = resume
          // interrupted while asleep (timeout, caller gone): leave the line at once
          return Effect.sync(() => {
            w.resume = undefined
            sub.waiters.delete(w)
          })
        })
        return Effect.onExit(
          restore(Effect.timeoutOrElse(wait, {
            duration: Math.max(0, timeoutMs),
            orElse: () =>
              Effect.suspend(() => {
                sub.timeouts++
                const active = countActive(sub)
                return Effect.fail(
                  new PoolTimeoutError({
                    server: sub.name,
                    timeoutMs: sub.r.acquireTimeoutMs,
                    total: sub.conns.size,
                    active,
                    pending: sub.waiters.size,
                    message: `no session of ${sub.name} available within ${sub.r.acquireTimeoutMs} ms ` +
                      `(total=${sub.conns.size}, active=${active}, starting=${sub.starting}, waiting=${sub.waiters.size})`
                  })
                )
              })
          })),
          (exit) =>
            Effect.sync(() => {
              if (exit._tag === "Success") return
              w.resume = undefined
              if (!sub.waiters.delete(w) && w.conn !== undefined) {
                // Handed a session at the moment we gave up: give it back, so it is not stranded.
                release(sub, w.conn)
              } else if (sub.waiters.size > 0) {
                dispatch(sub)
              }
            })
        )
      })

    /** The slow path: wait in line, ping a long-idle session, record the wait. Runs uninterruptibly. */
    const acquireSlow = Effect.fnUntraced(function*(sub: Sub, restore: Restore) {
      const started = now()
      let waited = false
      while (true) {
        if (closed || sub.removed) return yield* Effect.fail(closedError(sub))
        let c: Conn | undefined = sub.waiters.size === 0 ? pick(sub, now()) : undefined
        if (c !== undefined) {
          lease(sub, c)
        } else {
          waited = true
          c = yield* waitFor(sub, sub.r.acquireTimeoutMs - (now() - started), restore)
        }
        const t = now()
        if (c.inUse === 1 && t - c.idleSince >= sub.r.pingAfterMs) {
          const exit = yield* Effect.exit(restore(c.connection.ping({ timeout: sub.r.pingTimeoutMs })))
          if (exit._tag === "Failure") {
            const interrupted = Cause.hasInterrupts(exit.cause)
            if (!interrupted) retire(sub, c, "ping")
            release(sub, c)
            if (interrupted) return yield* Effect.interrupt
            continue
          }
          c.idleSince = now()
        }
        if (waited) {
          sub.waits++
          sub.waitHistogram.updateUnsafe((now() - started) / 1000, context)
        }
        return c
      }
    })

    /** A leased session of `server`: the warm path is a few field updates; else the slow path. */
    const acquire = (server: string, restore: Restore): Effect.Effect<readonly [Sub, Conn], PoolError> => {
      const sub = subs.get(server)
      if (sub === undefined) return unknownServer(server)
      if (sub.waiters.size === 0 && !closed) {
        const t = now()
        const c = pick(sub, t)
        if (c !== undefined && !(c.inUse === 0 && t - c.idleSince >= sub.r.pingAfterMs)) {
          lease(sub, c)
          return Effect.succeed([sub, c] as const)
        }
      }
      return Effect.map(acquireSlow(sub, restore), (c) => [sub, c] as const)
    }

    const use = <A, E, R>(
      server: string,
      f: (connection: McpConnection) => Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | PoolError, R> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.suspend(() => acquire(server, restore)), ([sub, c]) =>
          Effect.onExitPrimitive(restore(Effect.suspend(() => f(c.connection))), () => {
            release(sub, c)
            return undefined
          }))
      )

    const get = (server: string): Effect.Effect<McpConnection, PoolError, Scope.Scope> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.suspend(() => acquire(server, restore)), ([sub, c]) => {
          // A scoped lease can outlive its purpose (a scope that is never closed): remember when it began.
          const held = sub.r.leakMs === Infinity ? undefined : { since: now(), warned: false }
          if (held !== undefined) sub.held.add(held)
          return Effect.as(
            Effect.addFinalizer(() =>
              Effect.sync(() => {
                if (held !== undefined) sub.held.delete(held)
                release(sub, c)
              })
            ),
            c.connection
          )
        })
      )

    // ---- servers ----------------------------------------------------------------------------------------

    /** Fails waiters, interrupts connects, closes every session; returns once all are closed. */
    const shutdown = (sub: Sub, reason: DestroyReason): Effect.Effect<void> =>
      Effect.suspend(() => {
        sub.removed = true
        sub.generation++
        const error = closedError(sub)
        for (const w of Array.from(sub.waiters)) failWaiter(sub, w, error)
        for (const c of Array.from(sub.conns)) destroy(sub, c, reason)
        return Effect.andThen(
          Fiber.interruptAll(Array.from(sub.creating)),
          Effect.suspend(() => Fiber.awaitAll(Array.from(sub.closing)))
        )
      }).pipe(Effect.asVoid, Effect.uninterruptible)

    const add = (name: string, server: ServerConfig, overrides: PoolSettingsInput = {}): Effect.Effect<void, McpConfigError> =>
      Effect.flatMap(
        Schema.decodeUnknownEffect(PoolSettings)({ ...baseInput, ...normalize(overrides) }).pipe(
          Effect.mapError((e) => configError(`servers.${name}`, e))
        ),
        (settings) =>
          Effect.sync(() => {
            if (closed) return
            const r = resolve(settings)
            const existing = subs.get(name)
            if (existing !== undefined) {
              existing.config = server
              existing.r = r
              existing.generation++
              for (const c of Array.from(existing.conns)) retire(existing, c, "replaced")
              dispatch(existing)
              ensureMinIdle(existing)
              return
            }
            const sub: Sub = {
              name,
              config: server,
              r,
              generation: 0,
              conns: new Set(),
              starting: 0,
              waiters: new Set(),
              creating: new Set(),
              closing: new Set(),
              removed: false,
              leases: 0,
              acquired: 0,
              released: 0,
              created: 0,
              destroyed: Object.fromEntries(DESTROY_REASONS.map((k) => [k, 0])) as Record<DestroyReason, number>,
              timeouts: 0,
              waits: 0,
              connectFailures: 0,
              held: new Set(),
              suspectedLeaks: 0,
              registrations: [],
              waitHistogram: Metric.withAttributes(metrics.acquireDuration, { server: name })
            }
            register(sub)
            subs.set(name, sub)
            ensureMinIdle(sub)
          })
      )

    const unregister = (sub: Sub) => {
      for (const r of sub.registrations) r.remove()
      sub.registrations.length = 0
    }

    const remove = (name: string): Effect.Effect<void, PoolUnknownServerError> =>
      Effect.suspend(() => {
        const sub = subs.get(name)
        if (sub === undefined) return unknownServer(name)
        subs.delete(name)
        return Effect.ensuring(shutdown(sub, "removed"), Effect.sync(() => unregister(sub)))
      })

    const statsOf = (sub: Sub): PoolStats => ({
      server: sub.name,
      total: sub.conns.size,
      active: countActive(sub),
      idle: countIdle(sub),
      starting: sub.starting,
      pending: sub.waiters.size,
      leases: sub.leases,
      maxConnections: sub.r.max,
      acquired: sub.acquired,
      released: sub.released,
      created: sub.created,
      destroyed: { ...sub.destroyed },
      timeouts: sub.timeouts,
      waits: sub.waits,
      connectFailures: sub.connectFailures,
      suspectedLeaks: sub.suspectedLeaks
    })

    // ---- housekeeping -----------------------------------------------------------------------------------

    const sweep = (sub: Sub): void => {
      const t = now()
      let idle = countIdle(sub)
      for (const c of Array.from(sub.conns)) {
        if (c.destroyed) continue
        if (!c.connection.isOpen()) {
          if (c.retiring === undefined && c.inUse === 0) idle--
          c.retiring = "broken"
          destroy(sub, c, "broken")
        } else if (c.retiring !== undefined) {
          if (c.inUse === 0) destroy(sub, c, c.retiring)
        } else if (t >= c.expiresAt) {
          if (c.inUse === 0) idle--
          retire(sub, c, "lifetime")
        } else if (c.inUse === 0 && idle > sub.r.minIdle && t - c.idleSince >= sub.r.idleMs) {
          idle--
          retire(sub, c, "idle")
        }
      }
      dispatch(sub)
      ensureMinIdle(sub)
    }

    /** Leases held past `leakDetectionThreshold`: counted and logged once each, with the server and age. */
    const detectLeaks = (sub: Sub): Effect.Effect<void> => {
      if (sub.held.size === 0) return Effect.void
      const t = now()
      const warnings: Array<Effect.Effect<void>> = []
      for (const held of sub.held) {
        if (held.warned || t - held.since < sub.r.leakMs) continue
        held.warned = true
        sub.suspectedLeaks++
        warnings.push(
          Effect.logWarning(
            `ConnectionPool: a session of "${sub.name}" has been leased for ${t - held.since} ms ` +
              `(leakDetectionThreshold ${sub.r.leakMs} ms): is a scope from pool.get never closed?`
          )
        )
      }
      return Effect.all(warnings, { discard: true })
    }

    const housekeeping = Effect.sleep(config.housekeepingInterval).pipe(
      Effect.andThen(Effect.suspend(() => {
        const subsNow = Array.from(subs.values())
        for (const sub of subsNow) sweep(sub)
        return Effect.forEach(subsNow, detectLeaks, { discard: true })
      })),
      Effect.forever
    )
    yield* Effect.forkIn(housekeeping, scope)

    yield* Scope.addFinalizer(
      scope,
      Effect.suspend(() => {
        closed = true
        const all = Array.from(subs.values())
        return Effect.forEach(all, (sub) => shutdown(sub, "closed"), { concurrency: "unbounded", discard: true }).pipe(
          Effect.ensuring(Effect.sync(() => {
            for (const sub of all) unregister(sub)
          }))
        )
      })
    )

    const shape: ConnectionPoolShape = {
      config,
      add,
      remove,
      list: Effect.sync(() => Array.from(subs.keys())),
      get,
      use,
      invalidate: (server, connection) =>
        Effect.sync(() => {
          const sub = subs.get(server)
          if (sub === undefined) return
          for (const c of sub.conns) {
            if (c.connection === connection) {
              retire(sub, c, "invalidated")
              dispatch(sub)
              return
            }
          }
        }),
      stats: (server) =>
        Effect.suspend(() => {
          const sub = subs.get(server)
          return sub === undefined ? unknownServer(server) : Effect.succeed(statsOf(sub))
        }),
      statsAll: Effect.sync(() => Array.from(subs.values(), statsOf)),
      healthCheck: (server) =>
        Effect.suspend(() => {
          const sub = subs.get(server)
          if (sub === undefined) return unknownServer(server)
          const open = Array.from(sub.conns).filter((c) => !c.destroyed && c.retiring === undefined)
          return Effect.forEach(
            open,
            (c) =>
              c.connection.ping({ timeout: sub.r.pingTimeoutMs }).pipe(
                Effect.as(true),
                Effect.catch(() =>
                  Effect.sync(() => {
                    retire(sub, c, "ping")
                    dispatch(sub)
                    return false
                  })
                )
              ),
            { concurrency: "unbounded" }
          ).pipe(Effect.map((results) => ({ ok: results.filter(Boolean).length, checked: results.length })))
        })
    }
    return shape
  })

/**
 * The connection pool service. Build one with {@link ConnectionPool.make} (scoped) or provide
 * {@link ConnectionPool.layer}; then `add` servers and borrow sessions with `get` / `use`.
 *
 * @since 0.1.0
 * @category services
 */
export class ConnectionPool extends Context.Service<ConnectionPool, ConnectionPoolShape>()("@keel/core/ConnectionPool") {
  /** Builds a pool owned by the current scope. */
  static readonly make = make
  /** A layer holding one pool; closing the layer closes every session. */
  static readonly layer = (
    config: ConnectionPoolConfigInput = {},
    options: MakeOptions = {}
  ): Layer.Layer<ConnectionPool, McpConfigError> => Layer.effect(ConnectionPool, make(config, options))
}
