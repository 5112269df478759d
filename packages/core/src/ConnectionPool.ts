/**
 * `ConnectionPool`: a keyed pool of live MCP sessions ({@link McpConnection}s). Each server gets its own
 * Effect `Pool` (`Pool.makeWithStrategy`); this module adds what a pool of child processes needs around it.
 * Spawning and initializing a stdio server costs hundreds of milliseconds; borrowing a warm session costs
 * well under a microsecond of Keel's own time.
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
 * | `MaxIdleConns` (5)               | `maxIdle` (a cap on idle sessions, as in Go; default: none), and `minIdle` (sessions kept warm; default 0) |
 * | `ConnMaxLifetime` (5 min)        | `maxLifetime` (5 min), staggered by `lifetimeJitter` (10 %)             |
 * | `ConnMaxIdleTime` (2 min)        | `idleTimeout` (2 min)                                                  |
 * | hard-coded 30 s wait             | `acquireTimeout` (30 s) → typed {@link PoolTimeoutError}               |
 *
 * ## Semantics
 *
 * - **Multiplexing.** One MCP session carries many concurrent JSON-RPC requests, so a session is lent to up
 *   to `maxRequestsPerConnection` borrowers at once (the `Pool`'s `concurrency`). A new session is started
 *   only when every session is at that limit (the `Pool`'s target size), never beyond `maxConnections`.
 * - **Balance.** `balance: "least-loaded"` (the default) lends the open session with the fewest borrowers
 *   (a woken waiter takes the session that freed up); `"fill-first"` is Effect `Pool`'s own order (the most recently returned session first, filled up to
 *   `concurrency` before the next). See "Least-loaded, measured" below.
 * - **Fairness.** Waiters are served first come, first served (the `Pool`'s waiter list); a new borrower never
 *   overtakes a waiter. A waiter woken for a session that is interrupted or times out passes the wake on.
 * - **Health.** A session whose child died or whose HTTP session broke (`isOpen()` false) is never handed
 *   out: it is invalidated when seen (a watcher per session sees a close at once) and its child is ended at
 *   once, even if it is still lent. After `pingAfterIdle` without use, a borrow pings the session first and
 *   invalidates it and borrows again if the ping fails.
 * - **Lifetime.** Each session's lifetime is `maxLifetime` minus a random share of up to `lifetimeJitter`
 *   of it, so sessions created together do not all expire together. An expired session is not lent again;
 *   it is closed as soon as its last borrower returns it. Idle sessions above `minIdle` are closed after
 *   `idleTimeout`. Both are one `Pool.Strategy` that sweeps every `housekeepingInterval`.
 * - **Child cap.** A session holds one of `maxConnections` per-server permits from before it connects until
 *   its child has exited, so live children never exceed `maxConnections`, also while an invalidated session
 *   is still lent and its replacement is wanted, and while a replaced config drains.
 * - **Start-up stampede.** At most `maxConcurrentConnects` sessions start connecting at once across all
 *   servers. A connect holds its slot until it is done or for `connectSlotHold` (1 s), whichever comes first:
 *   the slot bounds the CPU burst of spawning children, while a server that hangs in `initialize` (bounded
 *   by its own `connectTimeout`) must not keep every other server from connecting. Measured here: four hung
 *   servers held all four slots for their whole 1.5 s `connectTimeout`, so a healthy server's first call
 *   took 2.1 s; with the hold bounded it takes the hold plus its own connect.
 * - **Failures.** A failed connect fails a waiting borrower with its `McpConnectError` (the `Pool` hands each
 *   failure to one waiter and wakes the rest, who try again), so callers hear about a broken server at once
 *   instead of at their timeout.
 * - **Close.** Closing the pool (its scope), or `remove(name)`, fails every waiter with
 *   {@link PoolClosedError}, interrupts connects under way, and closes every session, busy or not, ending
 *   each child process before it returns.
 *
 * ## On Effect's `Pool`: what it does here, and the wrappers around it
 *
 * Each server's sessions live in a `Pool.makeWithStrategy` pool: it owns the items, their reference counts,
 * the waiter list, invalidation, the target size and the lease bookkeeping of `Pool.use` / `Pool.get`. Its
 * `min` is `minIdle`, its `max` is `maxConnections`, its `concurrency` is `maxRequestsPerConnection`. The
 * strategy sees every `PoolItem` (`refCount`, `idleSince`), so one sweep applies the jittered lifetime and
 * the idle timeout. What `Pool` does not do, and the small wrapper that does it:
 *
 * - **A typed error at shutdown.** `Pool` interrupts its waiters when it shuts down; a borrow whose pool shut
 *   down because the server was removed (or the pool closed) fails with {@link PoolClosedError} instead, and
 *   one whose pool was replaced by a new config borrows again from the new one.
 * - **Health before hand-out.** The warm path checks the session it is about to lend (`isOpen`, lifetime,
 *   idle age); anything else takes the slow path: `Pool.get`, check or ping, `Pool.invalidate` and retry.
 * - **Did the borrow wait?** A borrow waits only if `state.waiters` is not empty or no session is available;
 *   that is read before borrowing, so the wait histogram records real waits only, and `acquireTimeout`
 *   (`Effect.timeoutOrElse`, ~0.7 µs) is paid only by borrows that may wait.
 * - **Replacing a config.** `add` with a known name builds a new `Pool` and shuts the old one down; its
 *   sessions drain (busy ones close when returned).
 * - **The child cap.** `Pool` starts the replacement of an invalidated item while the old one may still be
 *   lent, so its item count can briefly pass `max`; the per-server permit (above) keeps the number of child
 *   processes at `maxConnections`: the replacement's connect waits for the old child to exit.
 * - **Closing busy sessions.** `Pool`'s shutdown waits for busy leases; Keel's `remove` and close end every
 *   child at once (a caller mid-call sees its call fail), then let the `Pool`'s shutdown finish in the
 *   background when the last borrower returns.
 * - **`minIdle`** is the `Pool`'s `min`, a floor on open sessions (all idle when there is no traffic); the
 *   idle-timeout sweep never takes the idle count below it. Unlike the former pool it does not start extra
 *   sessions to keep `minIdle` idle while others are busy. A warm-up connect that fails is retried by the
 *   next borrow, not by the sweep (a failed `Pool` item can only be dropped by a borrow).
 * - **Least-loaded.** `Pool` lends its most recently returned item; with `balance: "least-loaded"` the warm
 *   path moves the least-loaded available item to the head of the `Pool`'s available list (the list is part
 *   of `Pool.State`) before `Pool.use` takes it.
 *
 * Servers are added and removed explicitly, so a `Map` of server state replaces an `RcMap`.
 *
 * Measured in one process (`bench/connection-pool.bench.ts`, Node 22, a shared 2-core machine under a load
 * average of 5 to 11 from other work), two runs: a warm `pool.use` (acquire + release) has a median of
 * 0.84 / 0.83 µs per op, against 0.71 / 0.70 µs for a bare Effect `Pool.use` and 0.72 / 0.71 µs for a `Map`
 * lookup + `Pool.use` timed by the same loop (each figure includes 0.13–0.24 µs of timer and loop).
 *
 * ## Least-loaded, measured
 *
 * The demo server's `work` tool burns 4 ms of the server's CPU per call; 4 warm sessions (4 child
 * processes), `maxRequestsPerConnection` 32, callers looping for 2 s, both orders alternating in one run.
 * Calls/s, fill-first → least-loaded (median latency in ms):
 *
 * | concurrent callers | run 1 (load average ~5)      | run 2 (load average 8–11)    |
 * | -----------------: | ---------------------------- | ---------------------------- |
 * |                  1 | 156 → 205 (5.0 → 4.8)        | 93 → 96 (9.8 → 9.6)          |
 * |                  2 | 201 → 229 (9.2 → 8.0)        | 126 → 159 (12.6 → 8.1)       |
 * |                  4 | 187 → 300 (21.0 → 12.5)      | 120 → 121 (30.9 → 26.4)      |
 * |                  8 | 95 → 212 (84.3 → 32.6)       | 95 → 111 (80.9 → 50.9)       |
 * |                 32 | 99 → 218 (305.6 → 137.5)     | 114 → 136 (254.6 → 205.0)    |
 *
 * With fill-first every caller lands on the same session until it holds `maxRequestsPerConnection`
 * borrowers, so CPU-bound calls queue in one child process (one core) while three children idle. With a
 * core to spare, least-loaded served 1.6–2.3× the calls from 4 callers on, at less than half the median
 * latency; on a saturated machine the gain shrinks (0–26 %) but least-loaded was never behind. (With one
 * caller both orders use one session: that row is noise.) Calls that only wait (I/O) gain little, as one
 * session multiplexes them. Hence `least-loaded` is the default; `fill-first` stays available (it leaves
 * surplus sessions idle, so they time out sooner).
 *
 * Metrics are callback series read from the pool's state at scrape time (as in `KeyedCache`), so a warm
 * borrow costs a few field reads and one integer increment, and no metric update.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Pool from "effect/Pool"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as ConfigSchema from "./ConfigSchema.ts"
import type { McpConfigError } from "./ConfigSchema.ts"
import { UnknownServerError } from "./ManagerErrors.ts"
import { type ConnectOptions, McpClient, type McpConnection } from "./McpClient.ts"
import { AuthorizationRequiredError, McpAuthError, McpConnectError, type McpConnectFailure } from "./McpError.ts"
import type { ServerConfig } from "./ServerConfig.ts"
import { SessionHooks, type SessionHooksShape } from "./SessionHooks.ts"

// ---------------------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------------------

/** A share in `[0, 1]` (0 allowed, unlike `ConfigSchema.Fraction`), `defaultValue` when missing. */
const Share = (defaultValue: number) =>
  ConfigSchema.withDefault(Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 })), defaultValue)

/**
 * How a borrow picks among sessions with a free slot: `least-loaded` (fewest borrowers) or `fill-first`
 * (Effect `Pool`'s order: the most recently returned session, filled before the next).
 *
 * @since 0.2.0
 * @category config
 */
export const Balance = Schema.Literals(["least-loaded", "fill-first"])

/**
 * Per-server pool settings (each can be overridden per server in {@link ConnectionPoolShape.add}):
 *
 * | field                      | default        | meaning                                                          |
 * | -------------------------- | -------------- | ---------------------------------------------------------------- |
 * | `maxConnections`           | 10             | sessions per server, open or starting; live child processes never exceed it (seed `MaxOpenConns`) |
 * | `minIdle`                  | 0              | sessions kept open when idle (the `Pool`'s `min`)                 |
 * | `maxIdle`                  | none           | idle sessions kept on release; more are closed, unless a borrower waits (seed `MaxIdleConns`) |
 * | `maxLifetime`              | 5 min          | a session's age limit; 0 = none (seed `ConnMaxLifetime`)          |
 * | `lifetimeJitter`           | 0.1            | up to this share of `maxLifetime` is taken off each session, at random |
 * | `idleTimeout`              | 2 min          | idle sessions above `minIdle` are closed after this; 0 = never (seed `ConnMaxIdleTime`) |
 * | `acquireTimeout`           | 30 s           | longest wait for a session → {@link PoolTimeoutError}             |
 * | `maxRequestsPerConnection` | 32             | borrowers sharing one session at once (MCP multiplexes requests)  |
 * | `balance`                  | `least-loaded` | which session a borrow gets ({@link Balance})                     |
 * | `pingAfterIdle`            | 30 s           | ping a session on borrow once it has been idle this long; `null` = never |
 * | `pingTimeout`              | 5 s            | how long that ping may take                                       |
 * | `leakDetectionThreshold`   | `null`         | warn (log + `suspectedLeaks`) when a `get` lease is held longer; `null` = off |
 *
 * Durations are encoded as milliseconds.
 *
 * @since 0.1.0
 * @category config
 */
export const PoolSettings = Schema.Struct({
  maxConnections: ConfigSchema.IntAtLeast(1, 10),
  minIdle: ConfigSchema.IntAtLeast(0, 0),
  maxIdle: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  maxLifetime: ConfigSchema.Millis(300_000),
  lifetimeJitter: Share(0.1),
  idleTimeout: ConfigSchema.Millis(120_000),
  acquireTimeout: ConfigSchema.Millis(30_000),
  maxRequestsPerConnection: ConfigSchema.IntAtLeast(1, 32),
  balance: ConfigSchema.withDefault(Balance, "least-loaded"),
  pingAfterIdle: ConfigSchema.NullableMillis(30_000),
  pingTimeout: ConfigSchema.Millis(5_000),
  leakDetectionThreshold: ConfigSchema.NullableMillis(null)
})

/** The decoded per-server settings. @since 0.1.0 @category config */
export type PoolSettings = typeof PoolSettings.Type

/**
 * Pool config: every {@link PoolSettings} field (the default for all servers) plus the pool-wide
 *
 * | field                   | default | meaning                                                           |
 * | ----------------------- | ------- | ----------------------------------------------------------------- |
 * | `maxConcurrentConnects` | 4       | sessions starting to connect at once, across all servers          |
 * | `connectSlotHold`       | 1 s     | the longest a connect keeps its slot (a hung server must not starve the others) |
 * | `housekeepingInterval`  | 1 s     | how often lifetime, idle timeout, health and leaks are checked     |
 *
 * @since 0.1.0
 * @category config
 */
export const ConnectionPoolConfig = Schema.Struct({
  ...PoolSettings.fields,
  maxConcurrentConnects: ConfigSchema.IntAtLeast(1, 4),
  connectSlotHold: ConfigSchema.Millis(1_000),
  housekeepingInterval: ConfigSchema.Millis(1_000)
})

/** The decoded pool config. @since 0.1.0 @category config */
export type ConnectionPoolConfig = typeof ConnectionPoolConfig.Type

/** Every default applied. @since 0.1.0 @category config */
export const defaultConfig: ConnectionPoolConfig = Schema.decodeUnknownSync(ConnectionPoolConfig)({})

const DURATION_KEYS = [
  "maxLifetime",
  "idleTimeout",
  "acquireTimeout",
  "pingAfterIdle",
  "pingTimeout",
  "leakDetectionThreshold",
  "housekeepingInterval",
  "connectSlotHold"
] as const

type DurationKey = (typeof DURATION_KEYS)[number]

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

const decodeConfig = ConfigSchema.decodeSettings(ConnectionPoolConfig, "pool", DURATION_KEYS)
const decodeSettings = ConfigSchema.decodeSettings(PoolSettings, "servers", DURATION_KEYS)

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/**
 * No session of `server` became available within `acquireTimeout`. Carries the server's pool state at that
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
 * What borrowing a session can fail with: a timeout, a closed pool, an unknown server
 * (`UnknownServerError`, the same error the manager uses), or the server failing to start
 * (`McpConnectError`), or authorization being needed or refused (`AuthorizationRequiredError`, `McpAuthError`).
 *
 * @since 0.1.0
 * @category errors
 */
export type PoolError = PoolTimeoutError | PoolClosedError | UnknownServerError | McpConnectFailure

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

/** A zero count for every {@link DestroyReason}. */
const noneDestroyed = (): Record<DestroyReason, number> =>
  Object.fromEntries(DESTROY_REASONS.map((k) => [k, 0])) as Record<DestroyReason, number>

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
 * A plain read of one server's sessions (the seed's `GetMetrics()`).
 *
 * - `total`: sessions open, i.e. live children (including draining ones, not those being closed),
 *   `active`: lent to ≥ 1 borrower, `idle`: lent to none and not retiring, `starting`: being connected
 *   (holding a permit), `pending`: borrowers waiting, `leases`: borrows outstanding.
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
 * How the pool opens a session; `McpClient.connect` unless replaced (tests inject fakes). `options` are the
 * {@link SessionHooks}' `connectOptions` for the server.
 *
 * @since 0.1.0
 * @category models
 */
export type Connect = (
  name: string,
  config: ServerConfig,
  options?: ConnectOptions
) => Effect.Effect<McpConnection, McpConnectFailure, Scope.Scope>

/**
 * Options of {@link make} that are not data: `connect` (default `McpClient.connect`). What the pool does with
 * each session beyond opening it (connect options, watchers) comes from the {@link SessionHooks} service.
 *
 * @since 0.1.0
 * @category config
 */
export interface MakeOptions {
  readonly connect?: Connect | undefined
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
  /** Removes a server: its waiters get {@link PoolClosedError}; returns once its children have exited. */
  readonly remove: (name: string) => Effect.Effect<void, UnknownServerError>
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
   * The hot path's synchronous borrow (`McpClientManager.callTool`): a warm session of `server` lent at
   * once, without a fiber, a scope or a wait, or `undefined` when that is not possible (no session ready,
   * borrowers waiting, a session due for its idle ping or past its lifetime, the `Pool` wanting to grow,
   * the server closed or unknown); then take {@link use}. The caller must call `release()` exactly once,
   * whatever happens, and run the effect it returns, if any. Optional: a pool without it is always borrowed
   * through `use`.
   */
  readonly tryLeaseUnsafe?: ((server: string) => SyncLease | undefined) | undefined
  /**
   * Marks a borrowed session as bad: it is not lent again and is closed once its borrowers return it.
   * (Sessions that closed by themselves are detected without this.)
   */
  readonly invalidate: (server: string, connection: McpConnection) => Effect.Effect<void>
  /** A plain read of one server's counters and gauges. */
  readonly stats: (server: string) => Effect.Effect<PoolStats, UnknownServerError>
  /** Every server's stats, in the order added. */
  readonly statsAll: Effect.Effect<ReadonlyArray<PoolStats>>
  /**
   * Pings the server's open sessions without leasing them: idle clocks are left alone (a health check
   * does not keep sessions from their idle timeout) and no session is started. A session that fails its
   * ping is retired (`destroyed.ping`). Returns how many answered and how many were pinged.
   */
  readonly healthCheck: (server: string) => Effect.Effect<{ readonly ok: number; readonly checked: number }, UnknownServerError>
}

/**
 * A session lent by {@link ConnectionPoolShape.tryLeaseUnsafe}.
 *
 * @since 0.3.0
 * @category models
 */
export interface SyncLease {
  readonly connection: McpConnection
  /**
   * Gives the session back (call it exactly once). Returns `undefined` when that was done synchronously,
   * or an effect to run (borrowers to wake, a retired session to close) when it was not.
   */
  readonly release: () => Effect.Effect<void> | undefined
}

// ---------------------------------------------------------------------------------------------------------
// Internal state
// ---------------------------------------------------------------------------------------------------------

/** One server's settings in the units the hot path compares with (ms; `Infinity` = never). */
interface Resolved {
  readonly max: number
  readonly minIdle: number
  readonly maxIdle: number
  readonly lifetimeMs: number
  readonly jitter: number
  readonly idleMs: number
  readonly acquireTimeoutMs: number
  readonly concurrency: number
  readonly leastLoaded: boolean
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
    leastLoaded: s.balance === "least-loaded",
    pingAfterMs: s.pingAfterIdle === null ? Infinity : ms(s.pingAfterIdle),
    pingTimeoutMs: ms(s.pingTimeout),
    leakMs: s.leakDetectionThreshold === null ? Infinity : ms(s.leakDetectionThreshold)
  }
}

/** A pooled session: the `Pool`'s item value. */
interface Session {
  readonly connection: McpConnection
  /** Owns the connection and the per-server permit; closed once (see {@link startClose}). */
  readonly scope: Scope.Closeable
  readonly generation: Generation
  readonly expiresAt: number
  /** The `Pool`'s record of this session (reference count, idle time), set when the `Pool` takes it. */
  item: Item | undefined
  /** Not lent again: invalidated in its `Pool`, for this reason. */
  retiring: DestroyReason | undefined
  /** The fiber closing `scope`, once closing has begun. */
  closing: Fiber.Fiber<void> | undefined
}

type Item = Pool.PoolItem<Session, McpConnectFailure>

/** One Effect `Pool` of a server, built for one config; `add` with the same name makes the next one. */
interface Generation {
  pool: Pool.Pool<Session, McpConnectFailure>
  /** The `Pool`'s scope: closing it shuts the `Pool` down. */
  readonly scope: Scope.Closeable
  readonly config: ServerConfig
  readonly r: Resolved
}

/** One server's state, across its generations. */
interface ServerState {
  readonly name: string
  /** The generation borrows go to. */
  current: Generation
  /** Every generation whose `Pool` has not been shut down (the current one, and ones being replaced). */
  readonly generations: Set<Generation>
  /** Sessions open (connected, not yet closing), of every generation. */
  readonly sessions: Set<Session>
  /** `maxConnections` permits: one per session from before its connect until its child exited. */
  readonly permits: Semaphore.Semaphore
  /** Fibers connecting a session now (interrupted by close). */
  readonly connecting: Set<Fiber.Fiber<unknown, unknown>>
  /** Fibers closing a session now (awaited by close). */
  readonly closing: Set<Fiber.Fiber<unknown, unknown>>
  closed: boolean
  starting: number
  acquired: number
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

/** The whole pool's state: the record every step below reads and changes. */
interface PoolState {
  readonly config: ConnectionPoolConfig
  /** The pool-level settings as given (milliseconds), under each server's overrides. */
  readonly base: Record<string, unknown>
  readonly connect: Connect
  readonly hooks: SessionHooksShape
  readonly context: Context.Context<never>
  readonly clock: Clock.Clock
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  readonly connectPermits: Semaphore.Semaphore
  readonly connectSlotHoldMs: number
  readonly servers: Map<string, ServerState>
  closed: boolean
}

/** A borrow of the slow path: the session, and the scope whose closing gives it back. */
interface Lease {
  readonly session: Session
  readonly scope: Scope.Closeable
}

const now = (p: PoolState): number => p.clock.currentTimeMillisUnsafe()

const toConnectError = (name: string, cause: Cause.Cause<unknown>): McpConnectFailure => {
  const found = Cause.findErrorOption(cause)
  if (
    found._tag === "Some" &&
    (found.value instanceof McpConnectError || found.value instanceof AuthorizationRequiredError || found.value instanceof McpAuthError)
  ) return found.value
  return new McpConnectError({ server: name, message: `could not connect to ${name}: ${String(Cause.squash(cause))}`, stderrTail: "" })
}

const unknownServer = (p: PoolState, server: string) => {
  const available = Array.from(p.servers.keys())
  return Effect.fail(
    new UnknownServerError({
      server,
      available,
      message: `unknown MCP server "${server}"; known servers: ${available.join(", ") || "(none)"}`
    })
  )
}

const closedError = (p: PoolState, s: ServerState) =>
  new PoolClosedError({
    server: s.name,
    message: p.closed ? `the connection pool is closed (server ${s.name})` : `server ${s.name} was removed from the pool`
  })

// ---------------------------------------------------------------------------------------------------------
// Reading a server's state
// ---------------------------------------------------------------------------------------------------------

const counts = (s: ServerState) => {
  let active = 0
  let idle = 0
  let leases = 0
  let pending = 0
  for (const g of s.generations) {
    pending += g.pool.state.waiters.size
    for (const item of g.pool.state.items) {
      if (item.exit._tag !== "Success") continue
      leases += item.refCount
      if (item.refCount > 0) active++
      else if (item.exit.value.retiring === undefined) idle++
    }
  }
  return { active, idle, leases, pending }
}

const idleIn = (g: Generation): number => {
  let n = 0
  for (const item of g.pool.state.items) {
    if (item.exit._tag === "Success" && item.refCount === 0 && item.exit.value.retiring === undefined) n++
  }
  return n
}

/**
 * The stats of a server the pool does not hold (nothing open, nothing counted): what
 * `McpClientManager.status` reports for a server a third party sharing the pool removed.
 *
 * @since 0.3.0
 * @category models
 */
export const emptyStats = (server: string): PoolStats => ({
  server,
  total: 0,
  active: 0,
  idle: 0,
  starting: 0,
  pending: 0,
  leases: 0,
  maxConnections: 0,
  acquired: 0,
  released: 0,
  created: 0,
  destroyed: noneDestroyed(),
  timeouts: 0,
  waits: 0,
  connectFailures: 0,
  suspectedLeaks: 0
})

const statsOf = (s: ServerState): PoolStats => {
  const c = counts(s)
  return {
    server: s.name,
    total: s.sessions.size,
    active: c.active,
    idle: c.idle,
    starting: s.starting,
    pending: c.pending,
    leases: c.leases,
    maxConnections: s.current.r.max,
    acquired: s.acquired,
    released: s.acquired - c.leases,
    created: s.created,
    destroyed: { ...s.destroyed },
    timeouts: s.timeouts,
    waits: s.waits,
    connectFailures: s.connectFailures,
    suspectedLeaks: s.suspectedLeaks
  }
}

// ---------------------------------------------------------------------------------------------------------
// Sessions: open, retire, close
// ---------------------------------------------------------------------------------------------------------

const track = (set: Set<Fiber.Fiber<unknown, unknown>>, fiber: Fiber.Fiber<unknown, unknown>) => {
  set.add(fiber)
  fiber.addObserver(() => set.delete(fiber))
}

/** Starts closing a session (once): it stops counting as open now, its child is ended in the background. */
const startClose = (p: PoolState, s: ServerState, session: Session): Fiber.Fiber<void> => {
  if (session.closing === undefined) {
    s.sessions.delete(session)
    session.closing = p.run(Effect.uninterruptible(Scope.close(session.scope, Exit.void)))
    track(s.closing, session.closing)
  }
  return session.closing
}

/** Closes a session and waits until its child has exited. */
const closeSession = (p: PoolState, s: ServerState, session: Session): Effect.Effect<void> =>
  Effect.suspend(() => Effect.asVoid(Fiber.await(startClose(p, s, session))))

/**
 * Stops lending a session: `Pool.invalidate` (synchronous: it leaves the available list at once; an idle
 * session is closed now, a lent one when its last borrower returns it). A broken session's child is gone,
 * so its scope is closed at once, lent or not, and its permit freed for the replacement.
 */
const retire = (p: PoolState, s: ServerState, session: Session, reason: DestroyReason): void => {
  if (session.retiring === undefined) {
    session.retiring = reason
    s.destroyed[reason]++
    p.run(Pool.invalidate(session.generation.pool, session))
  }
  // also when already retiring for another reason (expired, replaced) but still lent
  if (reason === "broken") startClose(p, s, session)
}

/**
 * Runs a connect holding one of the pool-wide `maxConcurrentConnects` slots until it ends or for
 * `connectSlotHold`, whichever comes first (see "Start-up stampede" in the module doc).
 */
const withConnectSlot = <A, E, R>(p: PoolState, connect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.andThen(restore(p.connectPermits.take(1)), () => {
      let held = true
      const release = Effect.suspend(() => {
        if (!held) return Effect.void
        held = false
        return p.connectPermits.release(1)
      })
      return Effect.flatMap(
        Effect.forkDetach(Effect.andThen(Effect.sleep(p.connectSlotHoldMs), release)),
        (timer) => Effect.ensuring(restore(connect), Effect.andThen(Fiber.interrupt(timer), release))
      )
    })
  )

/** The Effect `Pool`'s `acquire`: a permit of the server, a connect slot, the connection, the hooks. */
const openSession = (p: PoolState, s: ServerState, g: Generation): Effect.Effect<Session, McpConnectFailure, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const itemScope = yield* Effect.scope
      yield* restore(s.permits.take(1))
      const scope = Scope.makeUnsafe()
      // Finalizers run last-in first-out: the permit is freed after everything else, once the child exited.
      yield* Scope.addFinalizer(scope, s.permits.release(1))
      if (s.closed || !s.generations.has(g)) {
        yield* Scope.close(scope, Exit.void)
        return yield* Effect.interrupt
      }
      s.starting++
      const fiber = yield* Effect.fiber
      s.connecting.add(fiber)
      const exit = yield* Effect.exit(restore(withConnectSlot(
        p,
        Scope.provide(p.connect(s.name, g.config, p.hooks.connectOptions(s.name)), scope)
      )))
      s.starting--
      s.connecting.delete(fiber)
      if (exit._tag === "Failure") {
        yield* Scope.close(scope, exit)
        if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
        s.connectFailures++
        return yield* Effect.fail(toConnectError(s.name, exit.cause))
      }
      const connection = exit.value
      const r = g.r
      const session: Session = {
        connection,
        scope,
        generation: g,
        expiresAt: now(p) + r.lifetimeMs * (1 - r.jitter * Math.random()),
        item: undefined,
        retiring: undefined,
        closing: undefined
      }
      s.sessions.add(session)
      s.created++
      yield* Scope.provide(p.hooks.onSession(s.name, g.config, connection), scope)
      // Watch for the session closing by itself (child died, HTTP session broke), to replace it at once.
      yield* Effect.forkIn(Effect.flatMap(connection.closed, () => Effect.sync(() => retire(p, s, session, "broken"))), scope)
      yield* Scope.addFinalizer(itemScope, closeSession(p, s, session))
      return session
    })
  )

// ---------------------------------------------------------------------------------------------------------
// The strategy: jittered lifetime + idle timeout + health, one sweep per housekeeping interval
// ---------------------------------------------------------------------------------------------------------

/** Retires dead, expired and (above `minIdle`) long-idle sessions of one generation. */
const sweep = (p: PoolState, s: ServerState, g: Generation): void => {
  const t = now(p)
  const r = g.r
  let idle = idleIn(g)
  for (const item of Array.from(g.pool.state.items)) {
    if (item.exit._tag !== "Success") continue
    const session = item.exit.value
    if (session.retiring !== undefined) continue
    const isIdle = item.refCount === 0
    if (!session.connection.isOpen()) retire(p, s, session, "broken")
    else if (t >= session.expiresAt) retire(p, s, session, "lifetime")
    else if (isIdle && idle > r.minIdle && t - item.idleSince >= r.idleMs) retire(p, s, session, "idle")
    else continue
    if (isIdle) idle--
  }
}

/** `get` leases held past `leakDetectionThreshold`: counted and logged once each, with the server and age. */
const detectLeaks = (p: PoolState, s: ServerState): Effect.Effect<void> => {
  if (s.held.size === 0) return Effect.void
  const t = now(p)
  const leakMs = s.current.r.leakMs
  const warnings: Array<Effect.Effect<void>> = []
  for (const held of s.held) {
    if (held.warned || t - held.since < leakMs) continue
    held.warned = true
    s.suspectedLeaks++
    warnings.push(
      Effect.logWarning(
        `ConnectionPool: a session of "${s.name}" has been leased for ${t - held.since} ms ` +
          `(leakDetectionThreshold ${leakMs} ms): is a scope from pool.get never closed?`
      )
    )
  }
  return Effect.all(warnings, { discard: true })
}

const strategy = (p: PoolState, s: ServerState, g: Generation): Pool.Strategy<Session, McpConnectFailure> => ({
  run: () =>
    Effect.forever(
      Effect.andThen(
        Effect.sleep(p.config.housekeepingInterval),
        Effect.suspend(() => {
          sweep(p, s, g)
          return g === s.current ? detectLeaks(p, s) : Effect.void
        })
      ),
      { disableYield: true }
    ),
  onAcquire: (item) =>
    Effect.sync(() => {
      if (item.exit._tag === "Success") item.exit.value.item = item
    }),
  reclaim: () => Effect.undefined
})

// ---------------------------------------------------------------------------------------------------------
// Borrowing
// ---------------------------------------------------------------------------------------------------------

/** Moves an available item to the head of the `Pool`'s available list (where `Pool.use` / `Pool.get` take it). */
const moveToFront = (state: Pool.State<Session, McpConnectFailure>, item: Item): void => {
  const prev = item.availablePrevious
  if (prev === undefined) return
  const next = item.availableNext
  prev.availableNext = next
  if (next !== undefined) next.availablePrevious = prev
  else state.availableTail = prev
  item.availablePrevious = undefined
  item.availableNext = state.availableHead
  state.availableHead!.availablePrevious = item
  state.availableHead = item
}

/**
 * The item a borrow may take at once, without waiting, checking or pinging: nobody waits, and the session
 * it would get (the least-loaded one, or the `Pool`'s head) is open, unexpired and not due for a ping. It
 * is moved to the head of the available list. `undefined` means: take the slow path.
 */
const pickReady = (p: PoolState, g: Generation): Item | undefined => {
  const state = g.pool.state
  if (state.waiters.size !== 0) return undefined
  let best = state.availableHead
  if (best === undefined) return undefined
  if (g.r.leastLoaded && best.availableNext !== undefined) {
    let choice: Item | undefined
    for (let item: Item | undefined = best; item !== undefined; item = item.availableNext) {
      if (item.exit._tag === "Success" && (choice === undefined || item.refCount < choice.refCount)) choice = item
    }
    if (choice === undefined) return undefined
    best = choice
  }
  if (best.exit._tag !== "Success") return undefined
  const session = best.exit.value
  if (session.retiring !== undefined || !session.connection.isOpen()) return undefined
  const t = now(p)
  if (t >= session.expiresAt || (best.refCount === 0 && t - best.idleSince >= g.r.pingAfterMs)) return undefined
  moveToFront(state, best)
  return best
}

/** Whether `Pool.get` would lend at once: nobody waits and a connected session has a free slot. */
const canLendNow = (g: Generation): boolean => {
  const state = g.pool.state
  if (state.waiters.size !== 0) return false
  for (let item = state.availableHead; item !== undefined; item = item.availableNext) {
    if (item.exit._tag === "Success") return true
  }
  return false
}

const timeoutError = (s: ServerState, g: Generation) =>
  Effect.suspend(() => {
    s.timeouts++
    const c = counts(s)
    const total = s.sessions.size
    return Effect.fail(
      new PoolTimeoutError({
        server: s.name,
        timeoutMs: g.r.acquireTimeoutMs,
        total,
        active: c.active,
        pending: c.pending,
        message: `no session of ${s.name} available within ${g.r.acquireTimeoutMs} ms ` +
          `(total=${total}, active=${c.active}, starting=${s.starting}, waiting=${c.pending})`
      })
    )
  })

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * The slow path: `Pool.get` into a scope of its own (bounded by `acquireTimeout` when it may wait), then the
 * checks of hand-out (open, unexpired, ping after idle); a session that fails them is invalidated and the
 * borrow tries again. A borrow of a `Pool` that shut down fails with {@link PoolClosedError} when the
 * server is gone, and tries the server's new `Pool` when its config was replaced. Runs uninterruptibly:
 * `restore` (of the caller's `uninterruptibleMask`) marks where it may be interrupted.
 */
const leaseSlow = (p: PoolState, s: ServerState, restore: Restore): Effect.Effect<Lease, PoolError> =>
  Effect.suspend(() => {
    const started = now(p)
    let waited = false
    const attempt: Effect.Effect<Lease, PoolError> = Effect.suspend(() => {
      if (s.closed) return Effect.fail(closedError(p, s))
      const g = s.current
      const ready = canLendNow(g)
      if (!ready) waited = true
      const scope = Scope.makeUnsafe()
      const borrow = Scope.provide(Pool.get(g.pool), scope)
      const bounded = ready ? borrow : Effect.timeoutOrElse(borrow, {
        duration: Math.max(0, g.r.acquireTimeoutMs - (now(p) - started)),
        orElse: () => timeoutError(s, g)
      })
      return Effect.flatMap(Effect.exit(restore(bounded)), (exit): Effect.Effect<Lease, PoolError> => {
        if (exit._tag === "Failure") {
          // Interrupted because this `Pool` is going away (shut down, or its connect interrupted by a
          // `remove` / replacement just before the shutdown reached its waiters), not by the caller.
          const shutDown = Cause.hasInterruptsOnly(exit.cause) && (g.pool.state.isShuttingDown || !s.generations.has(g))
          return Effect.andThen(
            Scope.close(scope, exit),
            shutDown ? (s.closed ? Effect.fail(closedError(p, s)) : attempt) : Effect.failCause(exit.cause)
          )
        }
        return check(p, s, { session: exit.value, scope }, restore, attempt, () => {
          if (waited) {
            s.waits++
            s.waitHistogram.updateUnsafe((now(p) - started) / 1000, p.context)
          }
        })
      })
    })
    return attempt
  })

/** The checks of hand-out on a leased session: lend it, or give it back, invalidate it and `retry`. */
const check = (
  p: PoolState,
  s: ServerState,
  lease: Lease,
  restore: Restore,
  retry: Effect.Effect<Lease, PoolError>,
  onLent: () => void
): Effect.Effect<Lease, PoolError> => {
  const { session } = lease
  const again = (reason: DestroyReason | undefined) => {
    if (reason !== undefined) retire(p, s, session, reason)
    return Effect.andThen(Scope.close(lease.scope, Exit.void), retry)
  }
  const lend = Effect.sync(() => {
    s.acquired++
    onLent()
    return lease
  })
  if (!session.connection.isOpen()) return again("broken")
  if (session.retiring !== undefined) return again(undefined)
  const t = now(p)
  if (t >= session.expiresAt) return again("lifetime")
  const item = session.item
  if (item === undefined || item.refCount !== 1 || t - item.idleSince < session.generation.r.pingAfterMs) return lend
  return Effect.flatMap(
    Effect.exit(restore(session.connection.ping({ timeout: session.generation.r.pingTimeoutMs }))),
    (exit) => {
      if (exit._tag === "Success") return lend
      if (Cause.hasInterrupts(exit.cause)) return Effect.andThen(Scope.close(lease.scope, Exit.void), Effect.interrupt)
      return again("ping")
    }
  )
}

/**
 * After a lease ended: a session returned idle beyond `maxIdle` is closed (seed `MaxIdleConns`), unless a
 * borrower waits for one: then it is theirs (as Go's `database/sql` hands a returned connection to a
 * waiting request before it looks at the idle cap), instead of being closed while the borrower starts a
 * new session (a new child process).
 */
const afterRelease = (p: PoolState, s: ServerState, session: Session): void => {
  const g = session.generation
  if (g.r.maxIdle === Infinity || session.retiring !== undefined || session.item?.refCount !== 0) return
  if (g.pool.state.waiters.size > 0) return
  if (idleIn(g) > g.r.maxIdle) retire(p, s, session, "excess")
}

const endLease = (p: PoolState, s: ServerState, lease: Lease): Effect.Effect<void> =>
  Effect.andThen(Scope.close(lease.scope, Exit.void), Effect.sync(() => afterRelease(p, s, lease.session)))

/**
 * `pool.use`. Every decision (which server, warm or slow path, which session, the counters) is taken when the
 * effect runs, not when it is built, so an effect that is run again (`Effect.retry`, `Effect.repeat`, the
 * same value in `Effect.all`) borrows afresh each time.
 */
const use = <A, E, R>(
  p: PoolState,
  server: string,
  f: (connection: McpConnection) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | PoolError, R> => Effect.suspend(() => useNow(p, server, f))

const useNow = <A, E, R>(
  p: PoolState,
  server: string,
  f: (connection: McpConnection) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | PoolError, R> => {
  const s = p.servers.get(server)
  if (s === undefined) return unknownServer(p, server)
  const g = s.current
  if (!s.closed && pickReady(p, g) !== undefined) {
    // The warm path: `Pool.use` lends the head of the available list, which `pickReady` just checked.
    s.acquired++
    if (g.r.maxIdle === Infinity) return Pool.use(g.pool, (session) => f(session.connection))
    let lent: Session | undefined
    return Effect.ensuring(
      Pool.use(g.pool, (session) => {
        lent = session
        return f(session.connection)
      }),
      Effect.sync(() => {
        if (lent !== undefined) afterRelease(p, s, lent)
      })
    )
  }
  return Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(
      leaseSlow(p, s, restore),
      (lease) => Effect.onExit(restore(Effect.suspend(() => f(lease.session.connection))), () => endLease(p, s, lease))
    )
  )
}

/** `pool.get`; decided when the effect runs, as {@link use}. */
const get = (p: PoolState, server: string): Effect.Effect<McpConnection, PoolError, Scope.Scope> =>
  Effect.suspend(() => getNow(p, server))

const getNow = (p: PoolState, server: string): Effect.Effect<McpConnection, PoolError, Scope.Scope> => {
  const s = p.servers.get(server)
  if (s === undefined) return unknownServer(p, server)
  const g = s.current
  if (!s.closed && g.r.maxIdle === Infinity && g.r.leakMs === Infinity && pickReady(p, g) !== undefined) {
    s.acquired++
    return Effect.map(Pool.get(g.pool), (session) => session.connection)
  }
  return Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(leaseSlow(p, s, restore), (lease) => {
      // A scoped lease can outlive its purpose (a scope that is never closed): remember when it began.
      const held = lease.session.generation.r.leakMs === Infinity ? undefined : { since: now(p), warned: false }
      if (held !== undefined) s.held.add(held)
      return Effect.as(
        Effect.addFinalizer(() =>
          Effect.andThen(
            Effect.sync(() => {
              if (held !== undefined) s.held.delete(held)
            }),
            endLease(p, s, lease)
          )
        ),
        lease.session.connection
      )
    })
  )
}

/**
 * The synchronous borrow (see {@link ConnectionPoolShape.tryLeaseUnsafe}): `pickReady`'s checks, then the
 * bookkeeping `Pool.use` does on its own warm path (usage, reference count, the available list). It lends
 * only when `Pool.use` would lend the same item at once without resizing; otherwise `undefined`.
 */
const tryLeaseUnsafe = (p: PoolState, server: string): SyncLease | undefined => {
  const s = p.servers.get(server)
  if (s === undefined || s.closed) return undefined
  const g = s.current
  const state = g.pool.state
  const config = g.pool.config
  if (state.isShuttingDown) return undefined
  if (!config.isFixed) {
    // `Pool.use` takes its slow path (which grows the pool) when one more borrower raises the target size.
    const target = Math.min(Math.max(config.minSize, Math.ceil((state.usage + 1) / config.targetUtilization / config.concurrency)), config.maxSize)
    if (target > state.items.size - state.invalidated.size) return undefined
  }
  const item = pickReady(p, g)
  if (item === undefined) return undefined
  state.usage++
  item.refCount++
  if (item.refCount >= config.concurrency) removeAvailableItem(state, item)
  s.acquired++
  return new SyncLeaseImpl(p, s, g, item)
}

class SyncLeaseImpl implements SyncLease {
  readonly connection: McpConnection
  readonly p: PoolState
  readonly s: ServerState
  readonly g: Generation
  readonly item: Item
  constructor(p: PoolState, s: ServerState, g: Generation, item: Item) {
    this.p = p
    this.s = s
    this.g = g
    this.item = item
    this.connection = (item.exit as Exit.Success<Session, McpConnectFailure>).value.connection
  }
  release(): Effect.Effect<void> | undefined {
    const { g, item, p, s } = this
    const session = (item.exit as Exit.Success<Session, McpConnectFailure>).value
    const state = g.pool.state
    if (state.waiters.size !== 0 || state.invalidated.has(item) || state.isShuttingDown) {
      // Waiters to wake or a retired item to close: the `Pool`'s own release (which needs a fiber).
      return Effect.andThen(item.release(Exit.void), Effect.sync(() => afterRelease(p, s, session)))
    }
    item.refCount--
    state.usage--
    if (item.refCount === 0) item.idleSince = now(p)
    if (item.refCount < g.pool.config.concurrency && !item.isAvailable) {
      // `Pool`'s addAvailableFront (Keel never `Pool.reserve`s an item, so none is reserved).
      item.isAvailable = true
      item.availablePrevious = undefined
      item.availableNext = state.availableHead
      if (state.availableHead !== undefined) state.availableHead.availablePrevious = item
      else state.availableTail = item
      state.availableHead = item
    }
    afterRelease(p, s, session)
    return undefined
  }
}

/** `Pool`'s removeAvailable: takes a saturated item off the available list. */
const removeAvailableItem = (state: Pool.State<Session, McpConnectFailure>, item: Item): void => {
  if (!item.isAvailable) return
  item.isAvailable = false
  if (item.availablePrevious !== undefined) item.availablePrevious.availableNext = item.availableNext
  else state.availableHead = item.availableNext
  if (item.availableNext !== undefined) item.availableNext.availablePrevious = item.availablePrevious
  else state.availableTail = item.availablePrevious
  item.availablePrevious = undefined
  item.availableNext = undefined
}

// ---------------------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------------------

const noop = (): void => {}

const register = (p: PoolState, s: ServerState): void => {
  const server = s.name
  const counter = (m: Metric.Counter<number>, attrs: Record<string, string>, read: () => number) =>
    Metric.registerUnsafe(Metric.withAttributes(m, attrs), p.context, {
      get: () => ({ count: read(), incremental: true }),
      update: noop,
      modify: noop
    })
  const gauge = (state: string, read: () => number) =>
    Metric.registerUnsafe(Metric.withAttributes(metrics.connections, { server, state }), p.context, {
      get: () => ({ value: read() }),
      update: noop,
      modify: noop
    })
  s.registrations.push(
    gauge("total", () => s.sessions.size),
    gauge("active", () => counts(s).active),
    gauge("idle", () => counts(s).idle),
    gauge("pending", () => counts(s).pending),
    gauge("starting", () => s.starting),
    counter(metrics.acquired, { server }, () => s.acquired),
    counter(metrics.released, { server }, () => s.acquired - counts(s).leases),
    counter(metrics.created, { server }, () => s.created),
    counter(metrics.acquireTimeouts, { server }, () => s.timeouts),
    ...DESTROY_REASONS.map((reason) => counter(metrics.destroyed, { server, reason }, () => s.destroyed[reason]))
  )
}

const unregister = (s: ServerState): void => {
  for (const r of s.registrations) r.remove()
  s.registrations.length = 0
}

/** Builds a server's next `Pool`, in a scope of its own, with the pool's context (its `Clock`, its logger). */
const makeGeneration = (p: PoolState, s: ServerState, config: ServerConfig, r: Resolved): Effect.Effect<Generation> =>
  Effect.suspend(() => {
    const scope = Scope.makeUnsafe()
    const g: Generation = { pool: undefined as unknown as Generation["pool"], scope, config, r }
    s.generations.add(g)
    return Pool.makeWithStrategy({
      acquire: openSession(p, s, g),
      min: r.minIdle,
      max: r.max,
      concurrency: r.concurrency,
      strategy: strategy(p, s, g)
    }).pipe(
      Effect.provideContext(Context.add(p.context, Scope.Scope, scope)),
      Effect.map((pool) => {
        g.pool = pool
        return g
      })
    )
  })

/**
 * Shuts a generation's `Pool` down in the background: it wakes its waiters at once (they fail with
 * {@link PoolClosedError}, or move to the next generation) and finishes when its last borrower returns.
 */
const dropGeneration = (p: PoolState, s: ServerState, g: Generation): void => {
  s.generations.delete(g)
  p.run(Scope.close(g.scope, Exit.void))
}

/** Fails waiters, interrupts connects, closes every session, busy or not; returns once every child exited. */
const shutdown = (p: PoolState, s: ServerState, reason: DestroyReason): Effect.Effect<void> =>
  Effect.suspend(() => {
    s.closed = true
    for (const session of s.sessions) {
      if (session.retiring === undefined) {
        session.retiring = reason
        s.destroyed[reason]++
      }
    }
    for (const g of Array.from(s.generations)) dropGeneration(p, s, g)
    return Effect.andThen(
      Fiber.interruptAll(Array.from(s.connecting)),
      Effect.suspend(() =>
        Effect.andThen(
          Effect.forEach(Array.from(s.sessions), (session) => closeSession(p, s, session), { concurrency: "unbounded", discard: true }),
          Effect.suspend(() => Fiber.awaitAll(Array.from(s.closing)))
        )
      )
    )
  }).pipe(Effect.asVoid, Effect.uninterruptible)

const newServerState = (name: string, r: Resolved): ServerState => ({
  name,
  current: undefined as unknown as Generation,
  generations: new Set(),
  sessions: new Set(),
  permits: Semaphore.makeUnsafe(r.max),
  connecting: new Set(),
  closing: new Set(),
  closed: false,
  starting: 0,
  acquired: 0,
  created: 0,
  destroyed: noneDestroyed(),
  timeouts: 0,
  waits: 0,
  connectFailures: 0,
  held: new Set(),
  suspectedLeaks: 0,
  registrations: [],
  waitHistogram: Metric.withAttributes(metrics.acquireDuration, { server: name })
})

const add = (
  p: PoolState,
  name: string,
  config: ServerConfig,
  overrides: PoolSettingsInput
): Effect.Effect<void, McpConfigError> =>
  Effect.flatMap(
    decodeSettings({ ...p.base, ...ConfigSchema.durationsToMillis(overrides, DURATION_KEYS) }, `servers.${name}`),
    (settings) =>
      Effect.suspend(() => {
        if (p.closed) return Effect.void
        const r = resolve(settings)
        const existing = p.servers.get(name)
        if (existing === undefined) {
          const s = newServerState(name, r)
          return Effect.map(makeGeneration(p, s, config, r), (g) => {
            s.current = g
            register(p, s)
            p.servers.set(name, s)
          })
        }
        const s = existing
        return Effect.andThen(
          s.permits.resize(r.max),
          Effect.map(makeGeneration(p, s, config, r), (g) => {
            const old = s.current
            s.current = g
            // Out of `generations` first, so the old `Pool`'s replacements for the sessions retired below
            // do not connect (see `openSession`).
            s.generations.delete(old)
            for (const session of Array.from(s.sessions)) {
              if (session.generation === old) retire(p, s, session, "replaced")
            }
            dropGeneration(p, s, old)
          })
        )
      })
  )

const remove = (p: PoolState, name: string): Effect.Effect<void, UnknownServerError> =>
  Effect.suspend(() => {
    const s = p.servers.get(name)
    if (s === undefined) return unknownServer(p, name)
    p.servers.delete(name)
    return Effect.ensuring(shutdown(p, s, "removed"), Effect.sync(() => unregister(s)))
  })

const invalidate = (p: PoolState, server: string, connection: McpConnection): Effect.Effect<void> =>
  Effect.sync(() => {
    const s = p.servers.get(server)
    if (s === undefined) return
    for (const session of s.sessions) {
      if (session.connection === connection) return retire(p, s, session, "invalidated")
    }
  })

const healthCheck = (p: PoolState, server: string) =>
  Effect.suspend(() => {
    const s = p.servers.get(server)
    if (s === undefined) return unknownServer(p, server)
    const open = Array.from(s.sessions).filter((session) => session.retiring === undefined)
    return Effect.forEach(
      open,
      (session) =>
        session.connection.ping({ timeout: session.generation.r.pingTimeoutMs }).pipe(
          Effect.as(true),
          Effect.catch(() =>
            Effect.sync(() => {
              retire(p, s, session, "ping")
              return false
            })
          )
        ),
      { concurrency: "unbounded" }
    ).pipe(Effect.map((results) => ({ ok: results.filter(Boolean).length, checked: results.length })))
  })

const closeAll = (p: PoolState): Effect.Effect<void> =>
  Effect.suspend(() => {
    p.closed = true
    const all = Array.from(p.servers.values())
    return Effect.forEach(all, (s) => shutdown(p, s, "closed"), { concurrency: "unbounded", discard: true }).pipe(
      Effect.ensuring(Effect.sync(() => {
        for (const s of all) unregister(s)
      }))
    )
  })

// ---------------------------------------------------------------------------------------------------------
// make
// ---------------------------------------------------------------------------------------------------------

/**
 * Builds a pool owned by the current scope. Closing the scope closes every session (ending every child
 * process), interrupts connects under way and fails waiters with {@link PoolClosedError}. Reads the
 * {@link SessionHooks} service once, here.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  input: ConnectionPoolConfigInput = {},
  options: MakeOptions = {}
): Effect.Effect<ConnectionPoolShape, McpConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* decodeConfig(input)
    const context = yield* Effect.context<never>()
    const p: PoolState = {
      config,
      base: ConfigSchema.durationsToMillis(input, DURATION_KEYS),
      connect: options.connect ?? McpClient.connect,
      hooks: yield* SessionHooks,
      context,
      clock: yield* Clock.Clock,
      run: Effect.runForkWith(context),
      connectPermits: Semaphore.makeUnsafe(config.maxConcurrentConnects),
      connectSlotHoldMs: Duration.toMillis(config.connectSlotHold),
      servers: new Map(),
      closed: false
    }
    yield* Effect.addFinalizer(() => closeAll(p))
    const shape: ConnectionPoolShape = {
      config,
      add: (name, server, overrides = {}) => add(p, name, server, overrides),
      remove: (name) => remove(p, name),
      list: Effect.sync(() => Array.from(p.servers.keys())),
      get: (server) => get(p, server),
      use: (server, f) => use(p, server, f),
      tryLeaseUnsafe: (server) => tryLeaseUnsafe(p, server),
      invalidate: (server, connection) => invalidate(p, server, connection),
      stats: (server) =>
        Effect.suspend(() => {
          const s = p.servers.get(server)
          return s === undefined ? unknownServer(p, server) : Effect.succeed(statsOf(s))
        }),
      statsAll: Effect.sync(() => Array.from(p.servers.values(), statsOf)),
      healthCheck: (server) => healthCheck(p, server)
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
  /** A layer holding one pool; closing the layer closes every session. Reads {@link SessionHooks}. */
  static readonly layer = (
    config: ConnectionPoolConfigInput = {},
    options: MakeOptions = {}
  ): Layer.Layer<ConnectionPool, McpConfigError> => Layer.effect(ConnectionPool, make(config, options))
}
