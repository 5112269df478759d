/**
 * `McpClientManager`: what a user adds to an Effect program. It composes services, each with its own
 * layer: the decoded {@link McpConfig}, one {@link ToolCache}, one {@link ConnectionPool} (whose
 * {@link SessionHooks} keep the cache right about every session), a {@link CircuitBreakerRegistry} (one
 * breaker per server, made at run time), and the metrics recorder (`McpMetrics.CurrentRecorder`, a
 * `Context.Reference`). Timeouts, retry, validation and status are the manager's own.
 *
 * ```ts
 * import { Effect } from "effect"
 * import { McpClientManager } from "@keel/core"
 *
 * const program = Effect.gen(function*() {
 *   const mcp = yield* McpClientManager
 *   const tools = yield* mcp.listTools("github")              // cached, refreshed on list_changed
 *   const result = yield* mcp.callTool("github", "search_issues", { q: "is:open" })
 * }).pipe(Effect.provide(McpClientManager.layerFile("mcp.json")))
 * ```
 *
 * ## Layers
 *
 * - `McpClientManager.layerFile(path)` / `layerConfig(json)`: the whole default graph in one Layer.
 * - `McpClientManager.layerDefault(options)`: the same graph over an `McpConfig` you provide.
 * - `McpClientManager.layer(options)`: the manager alone; it *requires* `McpConfig`, `ToolCache`,
 *   `ConnectionPool` and `CircuitBreakerRegistry`, so any of them can be swapped: another cache store, one
 *   pool shared by two managers, a fake pool in a test.
 *
 * ```ts
 * const live = McpClientManager.layer().pipe(
 *   Layer.provide(McpClientManager.layerConnectionPool().pipe(Layer.provide(SessionHooks.layer()))),
 *   Layer.provide(CircuitBreakerRegistry.layer()),
 *   Layer.provide(ToolCache.layer({ policy: "lfu", capacity: 1_000 })), // one cache: hooks and manager
 *   Layer.provide(McpConfig.layerFile("mcp.json"))
 * )
 * ```
 *
 * A manager adds its servers to the pool and the registry and removes them when it closes; a server name
 * the shared pool already holds is refused (`ServerExistsError`, or an `McpConfigError` for a server of the
 * config), so two managers never drain each other's sessions.
 *
 * ## Errors: one class per condition
 *
 * Every failure is a tagged class in the effect's error channel; no bad setting is a defect. A bad setting
 * anywhere (file, `connect` at run time, pool settings, breaker settings) is one class, `McpConfigError`,
 * whose `path` names the field. A missing server is one class, `UnknownServerError`, whether the manager or
 * the pool noticed. Keel does not fold the rest into one error with a `reason` union (Effect's
 * `McpClientError` idiom): the conditions call for different recoveries (`CircuitOpenError` falls back,
 * `UnknownToolError` and `InvalidArgumentsError` are caller bugs, `McpTimeoutError` is the caller's budget),
 * each signature already lists the exact union, and `Effect.catchTag` / `catchTags` recover one condition
 * in one line and match exhaustively, which a `reason` union would only give back through `catchReason`.
 *
 * ## The order of a `callTool`, and why
 *
 * 1. **Resolve** the server and the tool (through the cache): an unknown server or tool fails at once with a
 *    typed error that lists what exists. An unknown tool triggers one fresh `tools/list` first (at most once
 *    a second per server), since the list may have changed.
 * 2. **Validate** the arguments: they must be a JSON object that can be serialised (no cycles, BigInts,
 *    functions, symbols, non-finite numbers; checked with `skipValidation` too), then they are checked against
 *    the tool's `inputSchema` with the SDK's JSON-Schema validator (Ajv). A bad request is an
 *    `InvalidArgumentsError`: it costs no breaker permit, no connection and no network, and never counts as
 *    a server failure. A bad call option (a `timeout` of 0, -5 or `"soon"`) is an `McpConfigError` whose
 *    path is `callTool.options.timeout`.
 * 3. **Metrics** wrap everything below, so the recorded duration is what the caller waited, retries and
 *    rejections included.
 * 4. **Retry** wraps the breaker, so every attempt asks the breaker again: retries never get past an open
 *    breaker. Only errors that are safe to retry are: a failed connect always; a connection that closed
 *    under the call only for tools annotated `readOnlyHint` or `idempotentHint` (the server may have acted).
 *    A timeout is not retried (the caller set the budget), nor `McpMessageTooLargeError` (the same request
 *    would hit the same limit); tool errors and protocol errors are answers, not faults. A retry that the
 *    breaker rejects gives back the error the call first hit, not the `CircuitOpenError`.
 * 5. **Breaker** wraps the pool, so connect failures count against the server, while our own saturation (a
 *    pool timeout, a deadline spent waiting for a session) does not count. **One crash is one failure**: of
 *    the in-flight calls a dead session fails with `McpClosedError`, only the first counts (the others are
 *    marked with `CircuitBreaker.markUncounted`), so a crash under load does not open the breaker and the
 *    read-only retries reach the replacement session.
 * 6. **Pool** lends a connection (MCP multiplexes requests on one session).
 * 7. **Timeout.** The call's timeout is a **deadline over the whole call** (waiting for a session, the
 *    request, retries), so a caller who says 5 s gets an answer or a typed error in about 5 s: the wait for
 *    a session is bounded by what is left of the budget (`McpTimeoutError`, not counted), and the request
 *    on the wire gets the rest (`McpTimeoutError`, counted). `acquireTimeout` stays the pool's own cap on
 *    any wait (`PoolTimeoutError`). `timeoutScope: "wire"` restores the per-request meaning. With
 *    reset-on-progress the deadline is the hard maximum. Slack: a call still waiting for a session is
 *    given up 50 ms after its deadline (so that a request timing out on the wire at the deadline is seen
 *    and counted by the breaker first); the fault suite allows 250 ms past the deadline in all, for timers
 *    and the event loop of a loaded 2-core machine (`McpClientManager.faults.test.ts`).
 *
 * **The fused step.** The common call (no call option but `timeout`, the tool list cached and fresh, valid
 * arguments, a closed breaker, a warm session free now) runs the same order in one step: each service
 * offers a small synchronous entry point for it (`ToolCache.getUnsafe`, `Breaker.tryAcquireUnsafe` /
 * `recordUnsafe`, `ConnectionPool.tryLeaseUnsafe`, `McpMetrics.startUnsafe` / `finishUnsafe`), called as
 * plain functions in one `Effect.withFiber`, with two finalizers instead of the nested
 * `uninterruptibleMask` / `onExit` of `breaker.execute` and `pool.use`; the session sends with
 * `McpConnection.callToolFused`, one `Effect.callback` instead of `callTool`'s request wrapper (in-process,
 * client and server together, it allocates 2.2 KiB less per call; `bench/manager-inprocess.bench.ts`
 * measures both paths). Anything else (any other call option, a list to fetch, bad arguments, a wait for a
 * session, a breaker not closed, a retry after a failed attempt) takes the general path described above;
 * the results, counts and metrics are the same either way.
 *
 * Timeouts are positive; "no timeout" is `Duration.infinity` (or `null` in a file), and anything beyond
 * Node's timer limit (2^31 - 1 ms, about 24.8 days) is clamped to it instead of firing after 1 ms.
 *
 * ## Faults
 *
 * - A tool whose definition is invalid does not hide the others: when the SDK rejects a whole `tools/list`
 *   for one bad `inputSchema`, the list is fetched again leniently and each tool checked; the good ones stay
 *   listed and callable, the bad one fails with `InvalidToolError` when called, a warning is logged and the
 *   `keel_tools_invalid` gauge counts them. None of it counts against the server.
 * - `status().lastError` is the server's last real failure: never a caller's mistake, a rejection by the
 *   breaker (its `openedBy` carries the failure that opened it), or our own pool saturating.
 * - Names that come from servers (and callers) are escaped and cut to 120 characters in messages and logs
 *   (`displayName`); the errors' data fields keep them as they are.
 *
 * @since 0.1.0
 */
import type { CallToolResult, ListToolsResult, Tool } from "@modelcontextprotocol/client"
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/client/validators/ajv"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import { CircuitBreakerRegistry } from "./CircuitBreaker.ts"
import * as ConnectionPool from "./ConnectionPool.ts"
import {
  displayName,
  InvalidArgumentsError,
  InvalidToolError,
  ServerExistsError,
  UnknownServerError,
  UnknownToolError
} from "./ManagerErrors.ts"
import type { CallOptions, McpConnection } from "./McpClient.ts"
import { McpConfig } from "./McpConfig.ts"
import { decodePolicies, decodeServerEntry, type ServerEntry, type ServerPolicyInput } from "./McpConfigFile.ts"
import { isCallerRefusal, McpAuthError, type McpError, McpProtocolError, McpTimeoutError } from "./McpError.ts"
import * as McpAuth from "./McpAuth.ts"
import * as JsonArguments from "./JsonArguments.ts"
import * as McpMetrics from "./McpMetrics.ts"
import { McpConfigError, networkTransport, type ServerConfig, type ServerConfigInput } from "./ServerConfig.ts"
import * as SessionHooks from "./SessionHooks.ts"
import { type InvalidTimeout, type ResolvedTimeout, resolveTimeout, serverTimeoutMs } from "./Timeouts.ts"
import { ToolCache, type ToolCacheShape } from "./ToolCache.ts"
import { type BulkheadTimeoutError, type RateLimitedError, ServerLimits } from "./ServerLimits.ts"
import type {
  CompleteResult,
  GetPromptResult,
  Prompt,
  PromptReference,
  ReadResourceResult,
  Resource,
  ResourceTemplateReference,
  ResourceTemplateType,
  ResourceUpdatedNotificationParams
} from "@modelcontextprotocol/client"
import * as McpLists from "./McpLists.ts"
import * as McpSurface from "./McpSurface.ts"
import type * as McpToolkit from "./McpToolkit.ts"
import * as ToolFilter from "./ToolFilter.ts"

// ---------------------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------------------

/**
 * Everything `callTool` can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type CallToolError =
  | McpError
  | UnknownServerError
  | UnknownToolError
  | InvalidArgumentsError
  | InvalidToolError
  | McpConfigError
  | CircuitBreaker.CircuitOpenError
  | ConnectionPool.PoolError
  | ToolFilter.ToolDeniedError
  | RateLimitedError
  | BulkheadTimeoutError

/**
 * Everything `listTools` can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type ListToolsError = McpError | UnknownServerError | CircuitBreaker.CircuitOpenError | ConnectionPool.PoolError

/**
 * Per-call options of {@link Manager.callTool}: {@link CallOptions} (timeout, progress) plus `credential`,
 * which keeps `private` tool lists apart (see `ToolCache`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ManagerCallOptions extends CallOptions {
  readonly credential?: string | undefined
  /**
   * Skip the `inputSchema` validation (the server validates anyway). Default false. The arguments must still
   * be a JSON object that can be serialised (no cycles, BigInts, functions, symbols or non-finite numbers).
   */
  readonly skipValidation?: boolean | undefined
  /**
   * What `timeout` bounds. `"call"` (the default): the whole call, waiting for a session and retries
   * included, so the caller gets an answer or a typed error by the deadline. `"wire"`: each request on
   * the wire only (the pool's `acquireTimeout` then bounds each wait for a session on its own).
   */
  readonly timeoutScope?: "call" | "wire" | undefined
}

/**
 * Handlers for requests a server sends to the client (see {@link SessionHooks.ClientHandlers}).
 *
 * @since 0.1.0
 * @category models
 */
export type ClientHandlers = SessionHooks.ClientHandlers

/**
 * Retry policy for errors that are safe to retry (see the module doc): the first retry is immediate (the
 * pool has already replaced a dead session), later ones follow `schedule` (default: exponential from 50 ms,
 * jittered); `times` is the most retries (default 3; 0 turns retries off).
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryOptions {
  readonly schedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** At most this many retries (default 3). */
  readonly times?: number | undefined
}

/**
 * What the manager itself takes, beyond its services: the retry policy and the health-check interval.
 *
 * @since 0.1.0
 * @category models
 */
export interface ManagerOptions {
  readonly retry?: RetryOptions | undefined
  /** Ping every connected server at this interval (health check). Off by default. */
  readonly healthCheckInterval?: Duration.Input | undefined
}

/**
 * Options of the default graph ({@link McpClientManager.layerDefault}, `layerConfig`, `layerFile`): the
 * manager's own, plus the client handlers its pool's sessions declare.
 *
 * @since 0.2.0
 * @category models
 */
export interface LayerOptions extends ManagerOptions {
  readonly handlers?: ClientHandlers | undefined
}

/**
 * The status of one server.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerStatus {
  readonly server: string
  readonly transport: "stdio" | "http" | "sse"
  /** At least one session to the server is open. */
  readonly connected: boolean
  readonly breaker: CircuitBreaker.CircuitState
  readonly pool: ConnectionPool.PoolStats
  readonly tools: number | undefined
  /**
   * The MCP revision negotiated with the server (e.g. `2026-07-28`, `2025-11-25`), as seen on the last
   * session that listed its tools; `undefined` before any.
   */
  readonly protocolVersion: string | undefined
  /**
   * The server's last real failure, `at` in `Clock` milliseconds: never the caller's own mistake (bad
   * arguments or options, unknown tool, a -32602/-32601 answer), a breaker rejection (see
   * `CircuitOpenError.openedBy`), our own pool saturating, or a deadline spent waiting for a session.
   */
  readonly lastError: { readonly tag: string; readonly message: string; readonly at: number } | undefined
  /** The last health check that pinged a session, `at` in `Clock` milliseconds. */
  readonly lastHealthCheck: { readonly ok: boolean; readonly at: number } | undefined
}

/**
 * The manager.
 *
 * @since 0.1.0
 * @category models
 */
export interface Manager {
  /** Adds a server at run time (config as written in a file, or decoded). */
  readonly connect: (
    name: string,
    config: ServerConfigInput | ServerConfig,
    policy?: ServerPolicyInput
  ) => Effect.Effect<void, McpConfigError | ServerExistsError>
  /** Removes a server: closes its connections, drops its breaker and its cache entries. */
  readonly disconnect: (name: string) => Effect.Effect<void, UnknownServerError>
  /** The connected servers' names. */
  readonly servers: Effect.Effect<ReadonlyArray<string>>
  /** The server's tools, through the cache. */
  readonly listTools: (server: string, options?: { readonly credential?: string }) => Effect.Effect<ReadonlyArray<Tool>, ListToolsError>
  /** Calls a tool: validate → metrics → retry → breaker → pool → timeout (see the module doc). */
  readonly callTool: (
    server: string,
    tool: string,
    args?: Record<string, unknown>,
    options?: ManagerCallOptions
  ) => Effect.Effect<CallToolResult, CallToolError>
  /** Pings a server through the pool. */
  readonly ping: (server: string) => Effect.Effect<void, ListToolsError>
  /** Per-server status: breaker state, pool stats, tool count, last error with time. */
  readonly status: (server: string) => Effect.Effect<ServerStatus, UnknownServerError>
  /** The status of every server. */
  readonly statuses: Effect.Effect<ReadonlyArray<ServerStatus>>
  /** Breaker events of this manager's servers. */
  readonly breakerEvents: Stream.Stream<CircuitBreaker.CircuitBreakerEvent>
  /** The breaker of a server, for manual control (`isolate`, `reset`, ...). */
  readonly breaker: (server: string) => Effect.Effect<CircuitBreaker.Breaker, UnknownServerError>
  /**
   * `resources/list` of a server, every page (see `McpLists` for the caps), cached like the tool list under
   * its own key and dropped by `resources/list_changed`. Like every method below it goes metrics → retry →
   * breaker → pool → timeout (`timeouts.server`, or `options.timeout`); see `McpSurface`.
   */
  readonly listResources: (
    server: string,
    options?: McpSurface.SurfaceOptions
  ) => Effect.Effect<ReadonlyArray<Resource>, McpSurface.SurfaceError | McpLists.ListLimitError | UnknownServerError>
  /** `resources/templates/list`, every page, cached (dropped by `resources/list_changed`). */
  readonly listResourceTemplates: (
    server: string,
    options?: McpSurface.SurfaceOptions
  ) => Effect.Effect<ReadonlyArray<ResourceTemplateType>, McpSurface.SurfaceError | McpLists.ListLimitError | UnknownServerError>
  /** `resources/read` of one URI. */
  readonly readResource: (
    server: string,
    uri: string,
    options?: McpSurface.SurfaceOptions
  ) => Effect.Effect<ReadResourceResult, McpSurface.SurfaceError | UnknownServerError>
  /**
   * The `notifications/resources/updated` of one URI, as a stream: subscribed (on a session borrowed from
   * the pool, through the breaker) when it starts, unsubscribed and the session returned when it ends; made
   * again on another session if its session closes (`resubscribe`, see `McpSurface.subscribeResource`).
   */
  readonly subscribeResource: (
    server: string,
    uri: string,
    options?: McpSurface.SubscribeOptions
  ) => Stream.Stream<ResourceUpdatedNotificationParams, McpSurface.SurfaceError | UnknownServerError>
  /** `prompts/list`, every page, cached (dropped by `prompts/list_changed`). */
  readonly listPrompts: (
    server: string,
    options?: McpSurface.SurfaceOptions
  ) => Effect.Effect<ReadonlyArray<Prompt>, McpSurface.SurfaceError | McpLists.ListLimitError | UnknownServerError>
  /**
   * `prompts/get`, after checking `args` against the prompt's declared arguments (from the cached list):
   * `UnknownPromptError`, `InvalidPromptArgumentsError`, and nothing sent.
   */
  readonly getPrompt: (
    server: string,
    name: string,
    args?: Record<string, string>,
    options?: McpSurface.SurfaceOptions
  ) => Effect.Effect<
    GetPromptResult,
    McpSurface.SurfaceError | McpLists.ListLimitError | McpSurface.UnknownPromptError | McpSurface.InvalidPromptArgumentsError | UnknownServerError
  >
  /** `completion/complete` for an argument of a prompt or a resource template. */
  readonly complete: (
    server: string,
    ref: PromptReference | ResourceTemplateReference,
    argument: { readonly name: string; readonly value: string },
    context?: Record<string, string>,
    options?: McpSurface.SurfaceOptions
  ) => Effect.Effect<CompleteResult["completion"], McpSurface.SurfaceError | UnknownServerError>
  /**
   * An `effect/ai` `Toolkit` of the servers' tools (filtered by `keel.tools`) whose handlers call through
   * this manager (see `McpToolkit`): pass it as `LanguageModel.generateText({ toolkit })`; each turn sees
   * the current tools.
   */
  readonly toolkit: (options?: McpToolkit.ToolkitOptions) => Effect.Effect<McpToolkit.KeelToolkit>
  /** The `ToolCache` service. */
  readonly cache: ToolCacheShape
  /** The `ConnectionPool` service (possibly shared with other managers). */
  readonly pool: ConnectionPool.ConnectionPoolShape
  /** The `CircuitBreakerRegistry` service (possibly shared with other managers). */
  readonly registry: CircuitBreaker.Registry
  /**
   * Completes a pending interactive authorization of a server whose calls failed with
   * `AuthorizationRequiredError` (see `McpAuth`): `callback` is the redirect's URL or query (the RFC 9207
   * `iss` in it is checked), or just the `code`. Later calls go through; nothing is restarted.
   */
  readonly finishAuth: (
    server: string,
    callback: string | URL | URLSearchParams
  ) => Effect.Effect<void, McpAuthError | UnknownServerError>
}

// ---------------------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------------------

type Validator = ReturnType<AjvJsonSchemaValidator["getValidator"]>

/** One server of a manager. */
interface ServerRuntime {
  readonly entry: ServerEntry
  /** `keel.tools` compiled; `undefined` when every tool is offered (the hot path skips it). */
  readonly toolFilter: ToolFilter.ToolFilter | undefined
  readonly transport: "pipe" | "tcp"
  readonly breaker: CircuitBreaker.Breaker
  lastError: { tag: string; message: string; at: number } | undefined
  lastHealthCheck: { ok: boolean; at: number } | undefined
  toolCount: number | undefined
  /** The revision negotiated by the last session that listed the server's tools. */
  protocolVersion: string | undefined
  lastUnknownToolRefetch: number
  /** The pool's `acquireTimeout` for this server, in ms: a call with a shorter budget bounds its own wait. */
  readonly acquireTimeoutMs: number
  /** Tools the server lists with an invalid definition (name → reason), from the last lenient `tools/list`. */
  invalidTools: ReadonlyMap<string, string>
  /** The live `tools/list` (breaker → pool → timeout), built once per server: a cache hit allocates none. */
  fetchTools: Effect.Effect<ListToolsResult, ListToolsError>
  /** Records a failure in `lastError`, built once per server. */
  noteError: (cause: Cause.Cause<unknown>) => Effect.Effect<void>
}

/** A manager's state: its services, its servers, and what it caches per tool. */
interface ManagerState {
  readonly config: McpConfig["Service"]
  readonly cache: ToolCacheShape
  readonly pool: ConnectionPool.ConnectionPoolShape
  readonly registry: CircuitBreaker.Registry
  readonly clock: Clock.Clock
  readonly runtimes: Map<string, ServerRuntime>
  readonly validator: AjvJsonSchemaValidator
  readonly validators: WeakMap<Tool, Validator>
  readonly retrySchedule: Schedule.Schedule<unknown, unknown>
  readonly retryTimes: number
  /** Per session: the error handler that counts only its first `McpClosedError` (one crash, one failure). */
  readonly closedHandlers: WeakMap<McpConnection, (e: McpError) => Effect.Effect<never, McpError>>
  /** Sessions whose first `McpClosedError` was counted ({@link noteClosed}). */
  readonly closedCounted: WeakSet<McpConnection>
}

const defaultRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential(50).pipe(Schedule.jittered)
const defaultRetryTimes = 3

// Decoded settings back to their encoded form (durations in ms), which is what the pool's inputs accept.
const encodePoolSettings = (s: ConnectionPool.PoolSettings) =>
  Schema.encodeSync(ConnectionPool.PoolSettings)(s) as ConnectionPool.PoolSettingsInput
const encodePoolConfig = (c: ConnectionPool.ConnectionPoolConfig) =>
  Schema.encodeSync(ConnectionPool.ConnectionPoolConfig)(c) as ConnectionPool.ConnectionPoolConfigInput

// ---------------------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------------------

/** The runtime of `server`, or an {@link UnknownServerError} listing the manager's servers. */
const lookup = (state: ManagerState, server: string): Effect.Effect<ServerRuntime, UnknownServerError> => {
  const rt = state.runtimes.get(server)
  return rt !== undefined ? Effect.succeed(rt) : Effect.fail(unknownServer(state, server))
}

const unknownServer = (state: ManagerState, server: string): UnknownServerError => {
  const available = [...state.runtimes.keys()]
  return new UnknownServerError({
    server,
    available,
    message: `no server named "${server}"; connected: ${available.join(", ") || "(none)"}`
  })
}

/**
 * Whether a failure is the server's, for `lastError`: not the caller's own mistake (bad arguments or call
 * options, unknown tool, a -32602/-32601 answer other than a broken `outputSchema`: `isCallerRefusal`), not a rejection by the breaker (it carries the failure
 * that opened it), not the client's own pool saturating or closing, and not a tool whose definition is bad.
 */
const isServerFailure = (error: { _tag?: string; code?: unknown }): boolean => {
  switch (error._tag) {
    case "InvalidArgumentsError":
    case "InvalidToolError":
    case "McpConfigError":
    case "UnknownToolError":
    case "UnknownServerError":
    case "CircuitOpenError":
    case "PoolTimeoutError":
    case "PoolClosedError":
      return false
    case "McpProtocolError":
      return !isCallerRefusal(error)
    default:
      return !CircuitBreaker.isUncounted(error)
  }
}

/** Records a server failure (not an interruption, not a caller mistake) as its `lastError`, timed by `Clock`. */
const noteErrorOf = (rt: ServerRuntime, clock: Clock.Clock) => (cause: Cause.Cause<unknown>): Effect.Effect<void> =>
  Effect.sync(() => noteErrorUnsafe(rt, clock, cause))

/** {@link noteErrorOf}, synchronously (for the fused step's finalizer). */
const noteErrorUnsafe = (rt: ServerRuntime, clock: Clock.Clock, cause: Cause.Cause<unknown>): void => {
  if (Cause.hasInterruptsOnly(cause)) return
  const error = Cause.squash(cause) as { _tag?: string; message?: string; code?: unknown }
  if (typeof error === "object" && error !== null && !isServerFailure(error)) return
  rt.lastError = { tag: error._tag ?? "Defect", message: error.message ?? String(error), at: clock.currentTimeMillisUnsafe() }
}

/** Prefixes an error's path (`pool.maxConnections` → `mcpServers.github.keel.pool.maxConnections`). */
const underPath = (prefix: string) => (e: McpConfigError): McpConfigError =>
  new McpConfigError({ path: `${prefix}.${e.path}`, message: e.message })

/**
 * Adds a server: its breaker to the registry, its settings to the pool. A name the (possibly shared) pool
 * already holds is refused, so this manager never replaces another's sessions.
 */
const addServer = (
  state: ManagerState,
  entry: ServerEntry,
  path: string
): Effect.Effect<void, McpConfigError | ServerExistsError> =>
  Effect.gen(function*() {
    const name = entry.name
    if (state.runtimes.has(name)) {
      return yield* new ServerExistsError({ server: name, message: `server "${name}" is already connected` })
    }
    if ((yield* state.pool.list).includes(name)) {
      return yield* new ServerExistsError({
        server: name,
        message: `the connection pool already holds a server named "${name}" (it is shared with another manager)`
      })
    }
    const breaker = yield* state.registry.add(name, entry.breaker).pipe(Effect.mapError(underPath(`${path}.keel`)))
    yield* state.pool.add(name, entry.config, encodePoolSettings(entry.pool)).pipe(
      Effect.mapError(underPath(`${path}.keel`)),
      Effect.onError(() => state.registry.remove(name))
    )
    const rt: ServerRuntime = {
      entry,
      toolFilter: ToolFilter.make(entry.tools),
      transport: networkTransport(entry.config),
      breaker,
      lastError: undefined,
      lastHealthCheck: undefined,
      toolCount: undefined,
      protocolVersion: undefined,
      lastUnknownToolRefetch: Number.NEGATIVE_INFINITY,
      acquireTimeoutMs: Duration.toMillis(entry.pool.acquireTimeout),
      invalidTools: new Map(),
      fetchTools: Effect.void as never,
      noteError: () => Effect.void
    }
    rt.noteError = noteErrorOf(rt, state.clock)
    const listOptions = { timeout: serverTimeoutMs(entry.timeouts) }
    rt.fetchTools = breaker.execute(
      state.pool.use(name, (c) => Effect.catch(fetchToolList(state, rt, c, listOptions), closedHandler(state, c)))
    ).pipe(Effect.onError((cause) => rt.noteError(cause)))
    state.runtimes.set(name, rt)
  })

/** Removes a server from the pool (closing its sessions) and the registry, and drops its cache entries. */
const removeServer = (state: ManagerState, name: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    state.runtimes.delete(name)
    return Effect.andThen(
      Effect.andThen(Effect.ignore(state.pool.remove(name)), state.registry.remove(name)),
      Effect.andThen(
        state.cache.invalidate(name),
        Effect.forEach(["prompts", "resources", "resourceTemplates"] as const, (kind) =>
          state.cache.invalidate(McpSurface.listKey(name, kind)), { discard: true })
      )
    )
  })

/** `connect`: a decoded config (secrets already `Redacted`) as it is; one as written is decoded with `${VAR}`. */
const connectServer = (
  state: ManagerState,
  name: string,
  config: ServerConfigInput | ServerConfig,
  policy: ServerPolicyInput
): Effect.Effect<void, McpConfigError | ServerExistsError> =>
  Effect.flatMap(
    isDecoded(config)
      ? Effect.map(decodePolicies(policy, state.config.defaults, `${name}.keel`), (p): ServerEntry => ({ name, config: config as ServerConfig, ...p }))
      : decodeServerEntry(name, { ...config, keel: policy }, state.config.defaults, process.env, name),
    (entry) => addServer(state, entry, name)
  )

/** Whether a server config was already decoded: its env or header values are `Redacted`. */
const isDecoded = (config: ServerConfigInput | ServerConfig): boolean => {
  const c = config as { env?: Record<string, unknown>; headers?: Record<string, unknown> }
  return [...Object.values(c.env ?? {}), ...Object.values(c.headers ?? {})].some(Redacted.isRedacted)
}

// ---------------------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------------------

/**
 * The error handler of one session that lets its first `McpClosedError` count against the breaker and marks
 * every later one uncounted: the in-flight calls a crash fails are one failure, not one per call. Made once
 * per session (a `WeakMap` lookup per call, no closure).
 */
const closedHandler = (
  state: ManagerState,
  c: McpConnection
): (e: McpError) => Effect.Effect<never, McpError> => {
  let handler = state.closedHandlers.get(c)
  if (handler === undefined) {
    handler = (e) => {
      noteClosed(state, c, e)
      return Effect.fail(e)
    }
    state.closedHandlers.set(c, handler)
  }
  return handler
}

/**
 * The first `McpClosedError` of a session counts against the breaker; the others (its calls that were in
 * flight when it closed) are marked uncounted: one broken session is one failure.
 */
const noteClosed = (state: ManagerState, c: McpConnection, e: { readonly _tag: string }): void => {
  if (e._tag !== "McpClosedError") return
  if (state.closedCounted.has(c)) CircuitBreaker.markUncounted(e)
  else state.closedCounted.add(c)
}

/** Tools listed with an invalid definition, per server (a gauge; 0 when all are valid). */
const invalidToolsGauge = Metric.gauge("keel_tools_invalid", {
  description: "Tools a server lists with an invalid definition (left out of the tool list; calling one fails with InvalidToolError)"
})

/**
 * `tools/list` on one session. The SDK rejects a whole list for one tool with an invalid schema
 * (`INVALID_RESULT`); then the list is fetched again through a lenient result schema and each tool is
 * checked here, so the good tools stay listed and callable and the bad ones are reported (an
 * {@link InvalidToolError} when called, a warning, the `keel_tools_invalid` gauge).
 */
const fetchToolList = (
  state: ManagerState,
  rt: ServerRuntime,
  c: McpConnection,
  options: { readonly timeout: number }
): Effect.Effect<ListToolsResult, McpError> =>
  Effect.suspend(() => {
    rt.protocolVersion = c.protocolVersion
    return c.listTools(options)
  }).pipe(
    Effect.tap(() => rt.invalidTools.size === 0 ? Effect.void : noteInvalidTools(rt, new Map())),
    Effect.catchIf(isInvalidResult, () => lenientToolList(state, rt, c, options.timeout))
  )

const isInvalidResult = (e: McpError): boolean =>
  e._tag === "McpProtocolError" && (e.data as { sdkCode?: unknown } | undefined)?.sdkCode === "INVALID_RESULT"

/** A Standard Schema that accepts any result: the lenient `tools/list` checks each tool itself. */
const anyResult = {
  "~standard": { version: 1, vendor: "keel", validate: (value: unknown) => ({ value }) }
} as const

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** What is wrong with one tool definition, or `undefined` when Keel can use it. */
const toolProblem = (state: ManagerState, t: Record<string, unknown>): string | undefined => {
  if (typeof t.name !== "string" || t.name.length === 0) return "name is not a non-empty string"
  for (const key of ["inputSchema", "outputSchema"] as const) {
    const schema = t[key]
    if (schema === undefined && key === "outputSchema") continue
    if (!isRecord(schema)) return `${key} is not an object`
    if (schema.type !== "object") return `${key}.type is not "object"`
    if (schema.properties !== undefined && !isRecord(schema.properties)) return `${key}.properties is not an object`
    if (schema.required !== undefined && !(Array.isArray(schema.required) && schema.required.every((r) => typeof r === "string"))) {
      return `${key}.required is not an array of strings`
    }
  }
  try {
    state.validator.getValidator(t.inputSchema as never)
  } catch (e) {
    return `inputSchema does not compile: ${displayName(String((e as Error).message ?? e))}`
  }
  return undefined
}

/**
 * The lenient `tools/list`: every page through {@link anyResult} (McpLists' page walk and caps), each tool
 * checked by {@link toolProblem}.
 */
const lenientToolList = (
  state: ManagerState,
  rt: ServerRuntime,
  c: McpConnection,
  timeoutMs: number
): Effect.Effect<ListToolsResult, McpError> =>
  Effect.flatMap(
    Effect.tryPromise({
      try: async (signal) => {
        const walked = await McpLists.walkPages(
          "tools",
          (cursor) =>
            c.sdk.request(
              { method: "tools/list", params: cursor !== undefined ? { cursor } : {} },
              anyResult,
              { signal, timeout: timeoutMs }
            ) as Promise<{ readonly nextCursor?: string; readonly [key: string]: unknown }>,
          { maxPages: McpLists.DEFAULT_MAX_PAGES, maxItems: McpLists.DEFAULT_MAX_ITEMS }
        )
        if (walked._tag === "Limit") {
          const max = walked.limit === "pages" ? McpLists.DEFAULT_MAX_PAGES : McpLists.DEFAULT_MAX_ITEMS
          throw new Error(`tools/list has more than ${max} ${walked.limit}; nothing was kept`)
        }
        const tools: Array<Tool> = []
        const invalid = new Map<string, string>()
        const list = walked.result.tools
        for (const t of Array.isArray(list) ? list : []) {
          const problem = isRecord(t) ? toolProblem(state, t) : "not an object"
          if (problem === undefined) tools.push(t as unknown as Tool)
          else invalid.set(isRecord(t) && typeof t.name === "string" ? t.name : `(tool ${tools.length + invalid.size})`, problem)
        }
        return { tools, invalid }
      },
      catch: (e) => lenientError(rt, timeoutMs, e)
    }),
    ({ invalid, tools }) => Effect.as(noteInvalidTools(rt, invalid), { tools } as ListToolsResult)
  )

/** The lenient list's failures (rare: the server had just answered the same request). */
const lenientError = (rt: ServerRuntime, timeoutMs: number, e: unknown): McpError => {
  const code = (e as { code?: unknown }).code
  if (code === "REQUEST_TIMEOUT") {
    return new McpTimeoutError({ server: rt.entry.name, method: "tools/list", timeoutMs, message: `tools/list timed out after ${timeoutMs} ms` })
  }
  return new McpProtocolError({
    server: rt.entry.name,
    method: "tools/list",
    code: typeof code === "number" ? code : -32603,
    message: displayName(String((e as Error)?.message ?? e)).slice(0, 500)
  })
}

/** Keeps the invalid tools of the last list; a warning per newly invalid tool; the gauge. */
const noteInvalidTools = (rt: ServerRuntime, invalid: ReadonlyMap<string, string>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const previous = rt.invalidTools
    rt.invalidTools = invalid
    const fresh = [...invalid].filter(([name]) => !previous.has(name))
    const gauge = Metric.update(Metric.withAttributes(invalidToolsGauge, { server: rt.entry.name }), invalid.size)
    if (fresh.length === 0) return gauge
    return Effect.andThen(
      gauge,
      Effect.forEach(fresh.slice(0, 20), ([name, reason]) =>
        Effect.logWarning(`server "${displayName(rt.entry.name)}" lists tool "${displayName(name)}" with an invalid definition (${reason}); it is left out of the list`).pipe(
          Effect.annotateLogs({ "mcp.server": displayName(rt.entry.name) })
        ), { discard: true })
    )
  })

/** The server's tool list through the cache; keeps the tool-count gauge up to date. */
const listResult = (state: ManagerState, rt: ServerRuntime, credential: string | undefined) =>
  state.cache.get(rt.entry.name, rt.fetchTools, { credential }).pipe(
    Effect.tap((r) =>
      rt.toolCount === r.tools.length ? Effect.void : Effect.andThen(
        Effect.sync(() => (rt.toolCount = r.tools.length)),
        McpMetrics.recordToolCount(rt.entry.name, r.tools.length)
      ))
  )

/** Name → tool of each list, built once per list object (the cache hands out the same frozen object). */
const toolIndexes = new WeakMap<ListToolsResult, ReadonlyMap<string, Tool>>()

/**
 * The tool named `name` in `list`, through the list's index: the same cost for the first and the last of
 * 10,000 tools, and less than a scan with a closure even for 11 (about 0.1 µs against 0.5 µs per call).
 */
const toolNamed = (list: ListToolsResult, name: string): Tool | undefined => {
  let index = toolIndexes.get(list)
  if (index === undefined) {
    index = new Map(list.tools.map((t) => [t.name, t]))
    toolIndexes.set(list, index)
  }
  return index.get(name)
}

/**
 * The tool named `tool`. A name not in the list triggers one fresh `tools/list` first, at most once a
 * second per server (by `Clock`), so callers that guess names cannot turn every call into a `tools/list`.
 */
const findTool = (
  state: ManagerState,
  rt: ServerRuntime,
  tool: string,
  credential: string | undefined
): Effect.Effect<Tool, ListToolsError | UnknownToolError | InvalidToolError> =>
  Effect.flatMap(listResult(state, rt, credential), (list) => {
    const found = toolNamed(list, tool)
    return found !== undefined ? Effect.succeed(found) : refetchTool(state, rt, tool, credential, list)
  })

const refetchTool = (
  state: ManagerState,
  rt: ServerRuntime,
  tool: string,
  credential: string | undefined,
  list: ListToolsResult
): Effect.Effect<Tool, ListToolsError | UnknownToolError | InvalidToolError> => {
  const now = state.clock.currentTimeMillisUnsafe()
  const refetch = now - rt.lastUnknownToolRefetch >= 1_000
  if (refetch) rt.lastUnknownToolRefetch = now
  const fresh = refetch ? Effect.andThen(state.cache.invalidate(rt.entry.name), listResult(state, rt, credential)) : Effect.succeed(list)
  return Effect.flatMap(fresh, (result): Effect.Effect<Tool, UnknownToolError | InvalidToolError> => {
    const again = toolNamed(result, tool)
    if (again !== undefined) return Effect.succeed(again)
    const reason = rt.invalidTools.get(tool)
    if (reason !== undefined) {
      return Effect.fail(
        new InvalidToolError({
          server: rt.entry.name,
          tool,
          reason,
          message: `server "${displayName(rt.entry.name)}" lists tool "${displayName(tool)}" with an invalid definition: ${reason}`
        })
      )
    }
    // Denied tools are neither listed nor named here (keel.tools).
    const names = ToolFilter.apply(rt.toolFilter, result.tools).map((t) => t.name)
    return Effect.fail(
      new UnknownToolError({
        server: rt.entry.name,
        tool,
        available: names.slice(0, 100),
        message: `server "${displayName(rt.entry.name)}" has no tool "${displayName(tool)}"; it has: ${
          names.slice(0, 20).map(displayName).join(", ")
        }${names.length > 20 ? ", ..." : ""}`
      })
    )
  })
}

/** The first failing JSON pointer in an Ajv error text such as "data/a must be number, ...". */
const pathOf = (errorMessage: string): string => {
  const m = /^data(\S*)/.exec(errorMessage)
  const p = m?.[1] ?? ""
  return p.length === 0 ? "/" : p.startsWith("/") ? p : `/${p}`
}

/**
 * The arguments must be a JSON object that can be serialised: checked before anything is sent, with
 * `skipValidation` too, so a caller's mistake is an {@link InvalidArgumentsError}, never a server failure.
 */
const checkShape = (rt: ServerRuntime, tool: string, args: unknown): InvalidArgumentsError | undefined => {
  const problem = typeof args !== "object" || args === null || Array.isArray(args)
    ? ["/", `arguments must be a JSON object, not ${args === null ? "null" : Array.isArray(args) ? "an array" : typeof args}`] as const
    : JsonArguments.serialisable(args) ? undefined : JsonArguments.unserialisable(args)
  if (problem === undefined) return undefined
  const path = problem[0] === "" ? "/" : problem[0]
  return new InvalidArgumentsError({
    server: rt.entry.name,
    tool,
    path,
    message: `arguments of ${displayName(rt.entry.name)}/${displayName(tool)} at ${displayName(path)}: ${problem[1]}`
  })
}

/**
 * Validates `args`: serialisable (see {@link checkShape}), then against the tool's `inputSchema` (the
 * compiled validator is kept per tool object).
 */
const validate = (
  state: ManagerState,
  rt: ServerRuntime,
  tool: Tool,
  args: Record<string, unknown>
): Effect.Effect<void, InvalidArgumentsError> => {
  const shape = checkShape(rt, tool.name, args)
  if (shape !== undefined) return Effect.fail(shape)
  let check = state.validators.get(tool)
  if (check === undefined) {
    check = state.validator.getValidator(tool.inputSchema as never)
    state.validators.set(tool, check)
  }
  const result = check(args)
  return result.valid ? Effect.void : Effect.fail(
    new InvalidArgumentsError({
      server: rt.entry.name,
      tool: tool.name,
      path: pathOf(result.errorMessage),
      message: `arguments of ${displayName(rt.entry.name)}/${displayName(tool.name)} fail its inputSchema: ${displayName(result.errorMessage)}`
    })
  )
}

// ---------------------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------------------

/**
 * Whether a failed attempt may be retried: a failed connect always; a session that closed under the call
 * only for tools annotated `readOnlyHint` or `idempotentHint` (the server may have acted). Never
 * `McpMessageTooLargeError` (the same request would hit the same limit), timeouts or answers.
 */
const isRetryable = (error: CallToolError, tool: Tool): boolean => {
  if (error._tag === "McpConnectError") return true
  if (error._tag !== "McpClosedError") return false
  const a = tool.annotations
  return a?.readOnlyHint === true || a?.idempotentHint === true
}

/**
 * The call's budget ran out before a session was lent: the caller's deadline, spent waiting (our own
 * saturation or a restart), so it is marked uncounted (never a server failure).
 */
const queuedTooLong = (rt: ServerRuntime, tool: Tool, budgetMs: number): McpTimeoutError =>
  CircuitBreaker.markUncounted(
    new McpTimeoutError({
      server: rt.entry.name,
      method: "tools/call",
      timeoutMs: budgetMs,
      message: `tools/call ${displayName(tool.name)} on ${displayName(rt.entry.name)}: no session within the call's ${budgetMs} ms deadline`
    })
  )

/** One call's timing: its budget, its deadline (`Clock` ms), and whether the deadline covers the wait. */
interface Budget {
  readonly t: ResolvedTimeout
  /** `t.timeoutMs`, or `t.maxMs` when progress resets the timeout. */
  readonly budgetMs: number
  /** `Clock` ms; `Infinity` when the timeout bounds the wire only. */
  readonly deadline: number
}

/**
 * How long after its deadline a call still waiting for a session is given up. The request on the wire is
 * timed for exactly what is left of the budget once a session is lent, and its timer fires first; this
 * grace keeps the wait's timer from interrupting (and so hiding from the breaker) a request timing out at
 * the same moment.
 */
const WAIT_GRACE_MS = 50

/**
 * Borrows a session and runs `f` with it. When the call's budget is shorter than the pool's
 * `acquireTimeout`, the wait is bounded by what is left of the budget (plus {@link WAIT_GRACE_MS}): one
 * `timeoutOrElse` around the borrow (about 0.7 µs), taken only by calls that asked for a short timeout;
 * otherwise the pool's own cap bounds the wait.
 */
const borrow = <A>(
  state: ManagerState,
  rt: ServerRuntime,
  tool: Tool,
  b: Budget,
  f: (c: McpConnection) => Effect.Effect<A, McpError>
): Effect.Effect<A, McpError | ConnectionPool.PoolError> => {
  if (b.deadline === Infinity) return state.pool.use(rt.entry.name, f)
  const left = b.deadline - state.clock.currentTimeMillisUnsafe()
  if (left <= 0) return Effect.fail(queuedTooLong(rt, tool, b.budgetMs))
  if (left >= rt.acquireTimeoutMs) return state.pool.use(rt.entry.name, f)
  return Effect.timeoutOrElse(state.pool.use(rt.entry.name, f), {
    duration: Duration.millis(left + WAIT_GRACE_MS),
    orElse: () => Effect.fail(queuedTooLong(rt, tool, b.budgetMs))
  })
}

/** One attempt: breaker → pool → timeout (innermost, on the wire, over what is left of the budget). */
const attempt = (
  state: ManagerState,
  rt: ServerRuntime,
  tool: Tool,
  args: Record<string, unknown>,
  callOptions: ManagerCallOptions | undefined,
  b: Budget
): Effect.Effect<CallToolResult, CallToolError> => {
  const t = b.t
  if (!t.resetOnProgress && callOptions?.onProgress === undefined) {
    // The common case: one timer, the SDK's, armed for what is left of the budget once a session is lent.
    return rt.breaker.execute(borrow(state, rt, tool, b, (c) => {
      const left = b.deadline === Infinity ? t.timeoutMs : b.deadline - state.clock.currentTimeMillisUnsafe()
      if (left <= 0) return Effect.fail(queuedTooLong(rt, tool, b.budgetMs))
      return Effect.catch(c.callTool(tool.name, args, { timeout: left, tool }), closedHandler(state, c))
    }))
  }
  // The SDK checks `maxTotalTimeout` only when progress arrives, so Keel enforces the hard maximum itself.
  return rt.breaker.execute(borrow(state, rt, tool, b, (c) => {
    const left = b.deadline === Infinity ? t.maxMs : b.deadline - state.clock.currentTimeMillisUnsafe()
    if (left <= 0) return Effect.fail(queuedTooLong(rt, tool, b.budgetMs))
    const wire: CallOptions = {
      timeout: Math.min(t.timeoutMs, left),
      tool,
      resetTimeoutOnProgress: t.resetOnProgress,
      // The SDK asks for progress (and resets on it) only when a progress callback is set.
      onProgress: callOptions?.onProgress ?? (() => {}),
      maxTotalTimeout: left
    }
    return c.callTool(tool.name, args, wire).pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(left),
        orElse: () =>
          Effect.fail(
            new McpTimeoutError({
              server: rt.entry.name,
              method: "tools/call",
              timeoutMs: t.maxMs,
              message: `tools/call ${displayName(tool.name)} exceeded its hard maximum of ${t.maxMs} ms`
            })
          )
      }),
      Effect.catch(closedHandler(state, c))
    )
  }))
}

/**
 * The retry of a failed attempt (the slow path): the schedule's delays are cut to what is left of the
 * budget, and no attempt starts after the deadline. A retry rejected by the breaker gives back the error
 * the call first hit, not the `CircuitOpenError` (which carries the failure that opened the breaker).
 */
const retryAttempt = (
  state: ManagerState,
  rt: ServerRuntime,
  tool: Tool,
  args: Record<string, unknown>,
  callOptions: ManagerCallOptions | undefined,
  first: CallToolError,
  b: Budget
): Effect.Effect<CallToolResult, CallToolError> => {
  // Built afresh per attempt: each borrow bounds its wait by what is left of the budget then.
  const once = Effect.suspend(() => attempt(state, rt, tool, args, callOptions, b))
  const schedule = b.deadline === Infinity ? state.retrySchedule : Schedule.modifyDelay(
    state.retrySchedule,
    ({ duration }) => Effect.succeed(Duration.min(duration, Duration.millis(Math.max(0, b.deadline - state.clock.currentTimeMillisUnsafe()))))
  )
  const inTime = () => state.clock.currentTimeMillisUnsafe() < b.deadline
  const retried = state.retryTimes > 1
    ? Effect.retry(once, { schedule, times: state.retryTimes - 1, while: (e) => isRetryable(e, tool) && inTime() })
    : once
  return Effect.catchTag(retried, "CircuitOpenError", () => Effect.fail(first))
}

/**
 * `callTool` once the tool is known: validate → metrics → retry → (attempt). The retry machinery is built
 * only once an attempt has failed with a retryable error.
 */
const callKnownTool = (
  state: ManagerState,
  rt: ServerRuntime,
  tool: Tool,
  args: Record<string, unknown>,
  callOptions: ManagerCallOptions | undefined
): Effect.Effect<CallToolResult, CallToolError> => {
  const t = resolveTimeout(rt.entry.timeouts, tool.name, callOptions)
  if (t._tag === "InvalidTimeout") {
    return Effect.fail(new McpConfigError({ path: `callTool.options.${t.option}`, message: t.message }))
  }
  const budgetMs = t.resetOnProgress || callOptions?.onProgress !== undefined ? t.maxMs : t.timeoutMs
  const b: Budget = {
    t,
    budgetMs,
    deadline: callOptions?.timeoutScope === "wire" ? Infinity : state.clock.currentTimeMillisUnsafe() + budgetMs
  }
  const once = attempt(state, rt, tool, args, callOptions, b)
  const call = Effect.catch(once, (error) =>
    state.retryTimes > 0 && isRetryable(error, tool) && state.clock.currentTimeMillisUnsafe() < b.deadline
      ? retryAttempt(state, rt, tool, args, callOptions, error, b)
      : Effect.fail(error))
  const shape = callOptions?.skipValidation === true ? checkShape(rt, tool.name, args) : undefined
  const validated = shape !== undefined
    ? Effect.fail(shape)
    : callOptions?.skipValidation === true
    ? call
    : Effect.andThen(validate(state, rt, tool, args), call)
  return validated.pipe(
    Effect.tapCause(rt.noteError),
    McpMetrics.track({ server: rt.entry.name, transport: rt.transport, method: "tools/call", tool: tool.name })
  )
}

/** The hot path: the fused step when it applies (see {@link fusedCall}), else plain combinators. */
const callTool = (
  state: ManagerState,
  server: string,
  toolName: string,
  args: Record<string, unknown> = {},
  callOptions?: ManagerCallOptions
): Effect.Effect<CallToolResult, CallToolError> => {
  const rt = state.runtimes.get(server)
  if (rt === undefined) return Effect.fail(unknownServer(state, server))
  if (rt.toolFilter !== undefined) {
    const denied = ToolFilter.check(rt.toolFilter, server, toolName)
    if (denied !== undefined) return Effect.fail(denied)
  }
  if (callOptions === undefined || timeoutOnly(callOptions)) {
    // Decided when the effect runs (and each time it runs: an effect value may be run again, or twice at
    // once), so the list is fresh then and every run has its own lease, permit and timer.
    return Effect.suspend(() =>
      fusedCall(state, rt, toolName, args, callOptions) ??
        Effect.flatMap(findTool(state, rt, toolName, undefined), (tool) => callKnownTool(state, rt, tool, args, callOptions))
    )
  }
  return Effect.flatMap(
    findTool(state, rt, toolName, callOptions?.credential),
    (tool) => callKnownTool(state, rt, tool, args, callOptions)
  )
}

// ---------------------------------------------------------------------------------------------------------
// The fused step
// ---------------------------------------------------------------------------------------------------------

/** Whether the call options set nothing but `timeout` (the fused step takes those calls too). */
const timeoutOnly = (o: ManagerCallOptions): boolean => {
  for (const key in o) {
    if (key !== "timeout" && (o as Record<string, unknown>)[key] !== undefined) return false
  }
  return true
}

/** Whether `args` pass what {@link validate} checks (shape and `inputSchema`), without building an error. */
const argsValid = (state: ManagerState, tool: Tool, args: Record<string, unknown>): boolean => {
  if (typeof args !== "object" || args === null || Array.isArray(args)) return false
  if (!JsonArguments.serialisable(args)) return false
  let check = state.validators.get(tool)
  if (check === undefined) {
    check = state.validator.getValidator(tool.inputSchema as never)
    state.validators.set(tool, check)
  }
  return check(args).valid
}

/**
 * The common `callTool` in one step: no call options but `timeout`, the tool list cached and fresh (read with
 * `ToolCache.getUnsafe`, the tool found in the list's name index), valid arguments, and a default timeout
 * without reset-on-progress. Returns `undefined` otherwise (the general path then produces the error, the
 * fetch, or the wait). The step is one `Effect.withFiber` that takes the breaker's permit
 * (`tryAcquireUnsafe`) and a warm session (`ConnectionPool.tryLeaseUnsafe`) as plain calls and starts the
 * metrics timer; one finalizer gives the session back and records the outcome in the breaker
 * (`recordUnsafe`), another records `lastError` and the metrics (`McpMetrics.finishUnsafe`). When no permit
 * or session is to be had at once, the attempt is the general one (`breaker.execute` → `pool.use`, which
 * wait, ping and resize). A failed attempt goes to the general retry; the recorded duration covers every
 * attempt, as with `McpMetrics.track` on the general path. Order and semantics are those of
 * {@link callKnownTool}: metrics → retry → breaker → pool → timeout.
 */
const fusedCall = (
  state: ManagerState,
  rt: ServerRuntime,
  toolName: string,
  args: Record<string, unknown>,
  callOptions: ManagerCallOptions | undefined
): Effect.Effect<CallToolResult, CallToolError> | undefined => {
  const getUnsafe = state.cache.getUnsafe
  const breaker = rt.breaker
  if (getUnsafe === undefined || state.pool.tryLeaseUnsafe === undefined || breaker.tryAcquireUnsafe === undefined) return undefined
  const list = getUnsafe(rt.entry.name, state.clock.currentTimeMillisUnsafe())
  // A list whose length changed takes the general path once, which updates the tool-count gauge.
  if (list === undefined || rt.toolCount !== list.tools.length) return undefined
  const tool = toolNamed(list, toolName)
  if (tool === undefined || !argsValid(state, tool, args)) return undefined
  const t = callOptions === undefined ? defaultTimeout(rt, tool) : resolveTimeout(rt.entry.timeouts, tool.name, callOptions)
  if (t._tag === "InvalidTimeout" || t.resetOnProgress) return undefined
  return new FusedCall(state, rt, tool, args, t).effect
}

/** A tool's timeout without call options, resolved once per tool object and server (the config is fixed). */
const defaultTimeouts = new WeakMap<Tool, { readonly rt: ServerRuntime; readonly t: ResolvedTimeout | InvalidTimeout }>()

const defaultTimeout = (rt: ServerRuntime, tool: Tool): ResolvedTimeout | InvalidTimeout => {
  const held = defaultTimeouts.get(tool)
  if (held !== undefined && held.rt === rt) return held.t
  const t = resolveTimeout(rt.entry.timeouts, tool.name, undefined)
  defaultTimeouts.set(tool, { rt, t })
  return t
}

/**
 * Whether a failure of a lent session's request may be retried for `tool`: only a close, and only for a
 * read-only or idempotent tool ({@link isRetryable}; a lent session cannot fail to connect).
 */
const retriesOnClose = (tool: Tool): boolean => tool.annotations?.readOnlyHint === true || tool.annotations?.idempotentHint === true

/** One fused call's state, shared by its step and its finalizers. */
class FusedCall {
  readonly state: ManagerState
  readonly rt: ServerRuntime
  readonly tool: Tool
  readonly args: Record<string, unknown>
  readonly t: ResolvedTimeout
  /** `Clock` ms when the call's budget runs out. */
  deadline = 0
  lease: ConnectionPool.SyncLease | undefined = undefined
  generation = 0
  /** `Clock` ms when the permit was taken (the breaker's call duration). */
  start = 0
  timer: McpMetrics.OperationTimer | undefined = undefined
  readonly effect: Effect.Effect<CallToolResult, CallToolError>

  constructor(state: ManagerState, rt: ServerRuntime, tool: Tool, args: Record<string, unknown>, t: ResolvedTimeout) {
    this.state = state
    this.rt = rt
    this.tool = tool
    this.args = args
    this.t = t
    // Each finalizer is installed before the step that needs it runs, so an interruption in between
    // leaves nothing to undo. The step's own general path (no permit or no session at once) carries its
    // retry; here only a lent session's failure can be retried, and only for some tools, so the catch is
    // built for those alone.
    const attempt = Effect.onExitPrimitive(Effect.withFiber((fiber) => this.step(fiber.context)), (exit) => this.endAttempt(exit))
    const retried = state.retryTimes > 0 && retriesOnClose(tool) ? Effect.catch(attempt, (error) => this.retry(error)) : attempt
    this.effect = Effect.onExitPrimitive(retried, (exit) => this.endCall(exit))
  }

  /** The call's budget, for the general path and the retry. */
  budget(): Budget {
    return { t: this.t, budgetMs: this.t.timeoutMs, deadline: this.deadline }
  }

  step(context: Context.Context<never>): Effect.Effect<CallToolResult, CallToolError> {
    const { rt, state, t, tool } = this
    const now = state.clock.currentTimeMillisUnsafe()
    this.deadline = now + t.timeoutMs
    this.timer = McpMetrics.startUnsafe({ server: rt.entry.name, transport: rt.transport, method: "tools/call", tool: tool.name }, context)
    const generation = rt.breaker.tryAcquireUnsafe!()
    const lease = generation === undefined ? undefined : state.pool.tryLeaseUnsafe!(rt.entry.name)
    if (lease === undefined) return Effect.catch(attempt(state, rt, tool, this.args, undefined, this.budget()), (error) => this.retry(error))
    this.lease = lease
    this.generation = generation!
    this.start = now
    const c = lease.connection
    return c.callToolFused?.(tool, this.args, t.timeoutMs, context) ?? c.callTool(tool.name, this.args, { timeout: t.timeoutMs, tool })
  }

  /**
   * The session back to the pool, the outcome to the breaker (what `pool.use` and `breaker.execute` do),
   * a session's close counted once ({@link noteClosed}, as `closedHandler` on the general path).
   */
  endAttempt(exit: Exit.Exit<CallToolResult, CallToolError>): Effect.Effect<void> | undefined {
    const lease = this.lease
    if (lease === undefined) return undefined
    this.lease = undefined
    if (exit._tag === "Failure") {
      const error = Cause.findErrorOption(exit.cause)
      if (error._tag === "Some") noteClosed(this.state, lease.connection, error.value)
    }
    return McpSurface.settleLease(lease, this.rt.breaker, this.generation, this.start, exit)
  }

  retry(error: CallToolError): Effect.Effect<CallToolResult, CallToolError> {
    const { state, tool } = this
    return state.retryTimes > 0 && isRetryable(error, tool) && state.clock.currentTimeMillisUnsafe() < this.deadline
      ? retryAttempt(state, this.rt, tool, this.args, undefined, error, this.budget())
      : Effect.fail(error)
  }

  /** `lastError` and the metrics of the whole call, every attempt included. */
  endCall(exit: Exit.Exit<CallToolResult, CallToolError>): undefined {
    if (exit._tag === "Failure") noteErrorUnsafe(this.rt, this.state.clock, exit.cause)
    if (this.timer !== undefined) McpMetrics.finishUnsafe(this.timer, exit)
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------------------
// Status and health
// ---------------------------------------------------------------------------------------------------------

const statusOf = (state: ManagerState, rt: ServerRuntime): Effect.Effect<ServerStatus> =>
  Effect.gen(function*() {
    // The manager added the server to the pool; a third party sharing the pool may have removed it since:
    // then nothing is open (not a defect).
    const stats = yield* Effect.catchTag(
      state.pool.stats(rt.entry.name),
      "UnknownServerError",
      () => Effect.succeed(ConnectionPool.emptyStats(rt.entry.name))
    )
    return {
      server: rt.entry.name,
      transport: rt.entry.config.type,
      connected: stats.total > 0,
      breaker: yield* rt.breaker.state,
      pool: stats,
      tools: rt.toolCount,
      protocolVersion: rt.protocolVersion,
      lastError: rt.lastError,
      lastHealthCheck: rt.lastHealthCheck
    }
  })

/**
 * One round of health checks. The pool pings open sessions in place: a health check never starts a
 * session (nor a child process) and never keeps one from its idle timeout; a session that fails is retired.
 */
const healthCheckAll = (state: ManagerState): Effect.Effect<void> =>
  Effect.suspend(() =>
    Effect.forEach(
      Array.from(state.runtimes.values()),
      (rt) =>
        state.pool.healthCheck(rt.entry.name).pipe(
          Effect.map(({ checked, ok }) => {
            if (checked > 0) rt.lastHealthCheck = { ok: ok === checked, at: state.clock.currentTimeMillisUnsafe() }
          }),
          Effect.ignore // removed meanwhile
        ),
      { discard: true }
    )
  )

// ---------------------------------------------------------------------------------------------------------
// Constructor
// ---------------------------------------------------------------------------------------------------------

/**
 * Builds a manager over the services in context, owned by the current scope. The config's servers are
 * added to the pool and the registry; closing the scope removes every server the manager added.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: ManagerOptions = {}
): Effect.Effect<
  Manager,
  McpConfigError,
  Scope.Scope | McpConfig | ToolCache | ConnectionPool.ConnectionPool | CircuitBreakerRegistry
> =>
  Effect.gen(function*() {
    const state: ManagerState = {
      config: yield* McpConfig,
      cache: yield* ToolCache,
      pool: yield* ConnectionPool.ConnectionPool,
      registry: yield* CircuitBreakerRegistry,
      clock: yield* Clock.Clock,
      runtimes: new Map(),
      validator: new AjvJsonSchemaValidator(),
      validators: new WeakMap(),
      retrySchedule: options.retry?.schedule ?? defaultRetry,
      retryTimes: options.retry?.times ?? defaultRetryTimes,
      closedHandlers: new WeakMap(),
      closedCounted: new WeakSet()
    }
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => Effect.forEach([...state.runtimes.keys()], (name) => removeServer(state, name), { discard: true }))
    )
    for (const entry of state.config.servers) {
      const path = `mcpServers.${entry.name}`
      yield* addServer(state, entry, path).pipe(
        Effect.catchTag("ServerExistsError", (e) => Effect.fail(new McpConfigError({ path, message: e.message })))
      )
    }
    if (options.healthCheckInterval !== undefined) {
      // The first round one interval after start: the sessions opened at start need no ping yet.
      const interval = options.healthCheckInterval
      yield* Effect.forkScoped(Effect.andThen(Effect.sleep(interval), Effect.repeat(healthCheckAll(state), Schedule.spaced(interval))))
    }
    const manager = makeManager(state, yield* McpAuth.McpAuth)
    // Per-server rate limits and bulkheads (`keel.rateLimit`, `keel.maxConcurrentCalls`) when a ServerLimits
    // is in context (ScaleOut's layers): one deadline covers the waits and the call, which gets what is left.
    const limits = yield* Effect.serviceOption(ServerLimits)
    if (Option.isNone(limits)) return manager
    const lim = limits.value
    const callTool: Manager["callTool"] = (server, tool, args, callOptions) => {
      if (!lim.limited(server)) return manager.callTool(server, tool, args, callOptions)
      const timeouts = state.config.servers.find((s) => s.name === server)?.timeouts
      const configured = timeouts?.tools[tool] ?? timeouts?.call
      const budget = callOptions?.timeout ?? (Duration.isDuration(configured) ? configured : "30 seconds")
      return lim.runWithin(server, budget, (remaining) => manager.callTool(server, tool, args, { ...callOptions, timeout: remaining }))
    }
    return { ...manager, callTool }
  })

// ---------------------------------------------------------------------------------------------------------
// Resources, prompts, completions, the toolkit (McpSurface and McpToolkit over this manager's servers)
// ---------------------------------------------------------------------------------------------------------

/** The server's tools through the cache, less those its `keel.tools` filter refuses. */
const listToolsOf = (state: ManagerState, server: string, credential: string | undefined) =>
  Effect.flatMap(lookup(state, server), (rt) =>
    Effect.map(listResult(state, rt, credential), (r) => ToolFilter.apply(rt.toolFilter, r.tools)))

const surfaceAccesses = new WeakMap<ServerRuntime, McpSurface.ServerAccess>()

/** What `McpSurface` needs of one server, built once per server. */
const surfaceAccess = (state: ManagerState, rt: ServerRuntime): McpSurface.ServerAccess => {
  let access = surfaceAccesses.get(rt)
  if (access === undefined) {
    access = {
      server: rt.entry.name,
      transport: rt.transport,
      breaker: rt.breaker,
      pool: state.pool,
      timeoutMs: serverTimeoutMs(rt.entry.timeouts),
      noteError: rt.noteError,
      cache: state.cache
    }
    surfaceAccesses.set(rt, access)
  }
  return access
}

const withSurface = <A, E>(
  state: ManagerState,
  server: string,
  f: (access: McpSurface.ServerAccess) => Effect.Effect<A, E>
): Effect.Effect<A, E | UnknownServerError> => Effect.flatMap(lookup(state, server), (rt) => f(surfaceAccess(state, rt)))

/** The manager's resource, prompt, completion and toolkit operations. */
const surfaceOperations = (state: ManagerState) => ({
  listResources: (server: string, options?: McpSurface.SurfaceOptions) =>
    withSurface(state, server, (a) => McpSurface.listResources(a, options)),
  listResourceTemplates: (server: string, options?: McpSurface.SurfaceOptions) =>
    withSurface(state, server, (a) => McpSurface.listResourceTemplates(a, options)),
  readResource: (server: string, uri: string, options?: McpSurface.SurfaceOptions) =>
    withSurface(state, server, (a) => McpSurface.readResource(a, uri, options)),
  subscribeResource: (server: string, uri: string, options?: McpSurface.SubscribeOptions) =>
    Stream.unwrap(withSurface(state, server, (a) => Effect.succeed(McpSurface.subscribeResource(a, uri, options)))),
  listPrompts: (server: string, options?: McpSurface.SurfaceOptions) =>
    withSurface(state, server, (a) => McpSurface.listPrompts(a, options)),
  getPrompt: (server: string, name: string, args?: Record<string, string>, options?: McpSurface.SurfaceOptions) =>
    withSurface(state, server, (a) => McpSurface.getPrompt(a, name, args, options)),
  complete: (
    server: string,
    ref: PromptReference | ResourceTemplateReference,
    argument: { readonly name: string; readonly value: string },
    context?: Record<string, string>,
    options?: McpSurface.SurfaceOptions
  ) => withSurface(state, server, (a) => McpSurface.complete(a, ref, argument, context, options)),
  // `McpToolkit` loads `effect/ai` (~140 ms of import time, measured in bench/RESULTS.md): loaded on first use,
  // so a program that never builds a toolkit never pays for it.
  toolkit: (options?: McpToolkit.ToolkitOptions) =>
    Effect.flatMap(Effect.promise(() => import("./McpToolkit.ts")), (McpToolkitModule) =>
      McpToolkitModule.toolkit({
        servers: Effect.sync(() => [...state.runtimes.keys()]),
        listTools: (server, o) => listToolsOf(state, server, o?.credential),
        callTool: (server, tool, args, o) => callTool(state, server, tool, args, o)
      }, options))
})

/** The manager's operations over its state. */
const makeManager = (state: ManagerState, auth: McpAuth.McpAuthShape): Manager => ({
  ...surfaceOperations(state),
  connect: (name, config, policy = {}) => connectServer(state, name, config, policy),
  disconnect: (name) => Effect.flatMap(lookup(state, name), () => removeServer(state, name)),
  servers: Effect.sync(() => [...state.runtimes.keys()]),
  listTools: (server, options) => listToolsOf(state, server, options?.credential),
  callTool: (server, tool, args, options) => callTool(state, server, tool, args, options),
  ping: (server) =>
    Effect.flatMap(lookup(state, server), (rt) =>
      rt.breaker.execute(state.pool.use(server, (c) => c.ping({ timeout: serverTimeoutMs(rt.entry.timeouts) })))),
  status: (server) => Effect.flatMap(lookup(state, server), (rt) => statusOf(state, rt)),
  statuses: Effect.suspend(() => Effect.forEach([...state.runtimes.values()], (rt) => statusOf(state, rt))),
  breakerEvents: Stream.filter(state.registry.events, (e) => state.runtimes.has(e.server)),
  breaker: (server) => Effect.map(lookup(state, server), (rt) => rt.breaker),
  cache: state.cache,
  pool: state.pool,
  registry: state.registry,
  finishAuth: (server, callback) =>
    Effect.flatMap(lookup(state, server), (rt) => {
      const config = rt.entry.config
      // The server's auth state, made from its config if no call made it yet (e.g. right after a restart).
      return config.type === "stdio" || config.auth === undefined
        ? Effect.fail(new McpAuthError({ server, message: `${server} has no auth section in its config` }))
        : auth.forServer(server, config.url, config.auth).finishAuth(callback)
    })
})

// ---------------------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------------------

/** The `ToolCache` of the default graph, from the config's `cache` section. */
const layerToolCache: Layer.Layer<ToolCache, never, McpConfig> = Layer.unwrap(
  Effect.map(Effect.service(McpConfig), (config) => ToolCache.layerConfig(config.cache))
)

/** The `ConnectionPool` of the default graph, from the config's `pool` section (hooks from context). */
const layerConnectionPool = (
  options: ConnectionPool.MakeOptions = {}
): Layer.Layer<ConnectionPool.ConnectionPool, McpConfigError, McpConfig> =>
  Layer.effect(
    ConnectionPool.ConnectionPool,
    Effect.flatMap(Effect.service(McpConfig), (config) => ConnectionPool.make(encodePoolConfig(config.pool), options))
  )

/** The manager over the default services; `McpConfig` is left to provide. */
const layerDefault = (options: LayerOptions = {}): Layer.Layer<McpClientManager, McpConfigError, McpConfig> =>
  Layer.effect(McpClientManager, make(options)).pipe(
    Layer.provide(Layer.mergeAll(
      layerConnectionPool().pipe(Layer.provide(SessionHooks.layer(options.handlers))),
      CircuitBreakerRegistry.layer()
    )),
    // One ToolCache for the session hooks (inside the pool) and for the manager.
    Layer.provide(layerToolCache)
  )

/**
 * The manager service.
 *
 * @since 0.1.0
 * @category services
 */
export class McpClientManager extends Context.Service<McpClientManager, Manager>()("@keel/core/McpClientManager") {
  /** Builds a manager over the services in context, owned by the current scope. */
  static readonly make = make

  /** The manager alone: requires `McpConfig`, `ToolCache`, `ConnectionPool` and `CircuitBreakerRegistry`. */
  static readonly layer = (
    options: ManagerOptions = {}
  ): Layer.Layer<McpClientManager, McpConfigError, McpConfig | ToolCache | ConnectionPool.ConnectionPool | CircuitBreakerRegistry> =>
    Layer.effect(McpClientManager, make(options))

  /**
   * The default graph over an `McpConfig` you provide: a `ToolCache` from `config.cache`, a
   * `ConnectionPool` from `config.pool` with `SessionHooks.layer(handlers)` over that same cache, and a
   * `CircuitBreakerRegistry`.
   */
  static readonly layerDefault = layerDefault

  /** A `ToolCache` from the config's `cache` section. */
  static readonly layerToolCache = layerToolCache

  /**
   * A `ConnectionPool` from the config's `pool` section. It reads `SessionHooks` from context when built:
   * provide `SessionHooks.layer(handlers)` to it (or your own hooks).
   */
  static readonly layerConnectionPool = layerConnectionPool

  /** The whole default graph from an `mcpServers` config value (parsed JSON), decoded with `${VAR}` expansion. */
  static readonly layerConfig = (json: unknown, options: LayerOptions = {}): Layer.Layer<McpClientManager, McpConfigError> =>
    layerDefault(options).pipe(Layer.provide(McpConfig.layerConfig(json)))

  /** The whole default graph from an `mcpServers` config file. */
  static readonly layerFile = (file: string, options: LayerOptions = {}): Layer.Layer<McpClientManager, McpConfigError> =>
    layerDefault(options).pipe(Layer.provide(McpConfig.layerFile(file)))
}
