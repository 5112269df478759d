/**
 * `McpClientManager`: what a user adds to an Effect program. One Layer composes, per server, the
 * {@link ConnectionPool}, the {@link ToolCache}, a {@link CircuitBreaker}, timeouts, retry and metrics.
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
 * ## The order of a `callTool`, and why
 *
 * 1. **Resolve** the server and the tool (through the cache): an unknown server or tool fails at once with a
 *    typed error that lists what exists. An unknown tool triggers one fresh `tools/list` first (at most once
 *    a second per server), since the list may have changed.
 * 2. **Validate** the arguments against the tool's `inputSchema` with the SDK's JSON-Schema validator (Ajv).
 *    A bad request costs no breaker permit, no connection and no network, and never counts as a server
 *    failure.
 * 3. **Metrics** wrap everything below, so the recorded duration is what the caller waited, retries and
 *    rejections included.
 * 4. **Retry** wraps the breaker, so every attempt asks the breaker again: retries never get past an open
 *    breaker (a `CircuitOpenError` is never retried). Only errors that are safe to retry are: a failed
 *    connect always; a connection that closed under the call only for tools annotated `readOnlyHint` or
 *    `idempotentHint` (the server may have acted). A timeout is not retried: the caller set the budget,
 *    and a retry would spend it again. Tool errors and protocol errors are answers, not faults.
 * 5. **Breaker** wraps the pool, so connect failures count against the server, while a local pool timeout
 *    (our own saturation) is not the server's fault and does not count.
 * 6. **Pool** lends a connection (MCP multiplexes requests on one session).
 * 7. **Timeout** is innermost, around the request on the wire only, so time spent waiting for a connection
 *    does not eat the call's budget; a hard maximum bounds the whole call whatever progress arrives.
 *
 * @since 0.1.0
 */
import type { CallToolResult, ElicitRequest, ElicitResult, ListToolsResult, Tool } from "@modelcontextprotocol/client"
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/client/validators/ajv"
import { Cause, Context, Duration, Effect, Exit, Layer, Redacted, Schedule, Schema, Scope, Stream } from "effect"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import * as ConnectionPool from "./ConnectionPool.ts"
import {
  InvalidArgumentsError,
  ServerExistsError,
  UnknownServerError,
  UnknownToolError
} from "./ManagerErrors.ts"
import { type CallOptions, type ConnectOptions, McpClient } from "./McpClient.ts"
import {
  decodeConfig,
  decodePolicies,
  decodeServerEntry,
  loadConfigFile,
  type McpConfig,
  type ServerEntry,
  type ServerPolicyInput
} from "./McpConfigFile.ts"
import type { McpError } from "./McpError.ts"
import * as McpMetrics from "./McpMetrics.ts"
import { type McpConfigError, networkTransport, type ServerConfig, type ServerConfigInput } from "./ServerConfig.ts"
import { resolveTimeout } from "./Timeouts.ts"
import * as ToolCache from "./ToolCache.ts"
import { McpTimeoutError } from "./McpError.ts"

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
  | CircuitBreaker.CircuitOpenError
  | ConnectionPool.PoolError

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
  /** Skip argument validation (the server validates anyway). Default false. */
  readonly skipValidation?: boolean | undefined
}

/**
 * Handlers for requests a server sends to the client. With `elicitation` set, Keel declares the
 * `elicitation` capability (form mode, with `applyDefaults`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientHandlers {
  readonly elicitation?: ((request: ElicitRequest["params"], server: string) => Effect.Effect<ElicitResult>) | undefined
  readonly sampling?: ((request: unknown, server: string) => Effect.Effect<unknown>) | undefined
  readonly roots?: ((server: string) => Effect.Effect<ReadonlyArray<{ readonly uri: string; readonly name?: string }>>) | undefined
}

/**
 * Retry policy for errors that are safe to retry (see the module doc): the first retry is immediate (the
 * pool has already replaced a dead session), later ones follow `schedule` (default: exponential from 50 ms,
 * jittered); `times` is the most retries (default 3).
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
 * How to build a manager: a decoded config (from {@link loadConfigFile} or {@link decodeConfig}), handlers
 * and retry policy.
 *
 * @since 0.1.0
 * @category models
 */
export interface ManagerOptions {
  readonly config: McpConfig
  readonly handlers?: ClientHandlers | undefined
  readonly retry?: RetryOptions | undefined
  /**
   * How sessions are opened: `McpClient.connect` unless replaced (e.g. to pass
   * `ConnectOptions.transport` for an in-memory server in tests).
   */
  readonly connect?: ConnectionPool.Connect | undefined
  /** Ping every connected server at this interval (health check). Off by default. */
  readonly healthCheckInterval?: Duration.Input | undefined
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
  readonly lastError: { readonly tag: string; readonly message: string; readonly at: number } | undefined
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
  /** Removes a server: closes its connections and drops its cache entries. */
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
  /** Breaker events of the servers connected when the stream starts. */
  readonly breakerEvents: Stream.Stream<CircuitBreaker.CircuitBreakerEvent>
  /** The breaker of a server, for manual control (`isolate`, `reset`, ...). */
  readonly breaker: (server: string) => Effect.Effect<CircuitBreaker.Breaker, UnknownServerError>
  /** The shared tool cache. */
  readonly cache: ToolCache.ToolCacheShape
  /** The shared connection pool. */
  readonly pool: ConnectionPool.ConnectionPoolShape
}

/**
 * The manager service.
 *
 * @since 0.1.0
 * @category services
 */
export class McpClientManager extends Context.Service<McpClientManager, Manager>()("@keel/core/McpClientManager") {
  /** Builds a manager owned by the current scope. */
  static readonly make = (options: ManagerOptions): Effect.Effect<Manager, never, Scope.Scope> => make(options)

  /** A layer from a decoded config. */
  static readonly layer = (options: ManagerOptions): Layer.Layer<McpClientManager> => Layer.effect(McpClientManager, make(options))

  /**
   * A layer from an `mcpServers` config value (as parsed JSON), decoded with `${VAR}` expansion.
   */
  static readonly layerConfig = (
    json: unknown,
    options: Omit<ManagerOptions, "config"> = {}
  ): Layer.Layer<McpClientManager, McpConfigError> =>
    Layer.effect(McpClientManager, Effect.flatMap(decodeConfig(json), (config) => make({ ...options, config })))

  /** A layer from an `mcpServers` config file. */
  static readonly layerFile = (
    file: string,
    options: Omit<ManagerOptions, "config"> = {}
  ): Layer.Layer<McpClientManager, McpConfigError> =>
    Layer.effect(McpClientManager, Effect.flatMap(loadConfigFile(file), (config) => make({ ...options, config })))
}

// ---------------------------------------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------------------------------------

interface ServerRuntime {
  readonly entry: ServerEntry
  readonly transport: "pipe" | "tcp"
  readonly breaker: CircuitBreaker.Breaker
  readonly scope: Scope.Closeable
  lastError: { tag: string; message: string; at: number } | undefined
  lastHealthCheck: { ok: boolean; at: number } | undefined
  toolCount: number | undefined
  lastUnknownToolRefetch: number
  fetchTools: Effect.Effect<ListToolsResult, ListToolsError>
}

const defaultRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential(50).pipe(Schedule.jittered)
const defaultRetryTimes = 3

// Decoded settings back to their encoded form (durations in ms), which is what the pool's inputs accept.
const encodePoolSettings = (s: ConnectionPool.PoolSettings) =>
  Schema.encodeSync(ConnectionPool.PoolSettings)(s) as ConnectionPool.PoolSettingsInput
const encodePoolConfig = (c: ConnectionPool.ConnectionPoolConfig) =>
  Schema.encodeSync(ConnectionPool.ConnectionPoolConfig)(c) as ConnectionPool.ConnectionPoolConfigInput

const SAFE_ALWAYS = new Set(["McpConnectError"])
const SAFE_IF_IDEMPOTENT = new Set(["McpClosedError"])

/** Whether a failed attempt may be retried: see the module doc. */
const retryable = (tool: Tool | undefined) => (error: CallToolError): boolean => {
  const tag = error._tag
  if (SAFE_ALWAYS.has(tag)) return true
  if (SAFE_IF_IDEMPOTENT.has(tag)) {
    const a = tool?.annotations
    return a?.readOnlyHint === true || a?.idempotentHint === true
  }
  return false
}

/** The first failing JSON pointer in an Ajv error text such as "data/a must be number, ...". */
const pathOf = (errorMessage: string): string => {
  const m = /^data(\S*)/.exec(errorMessage)
  const p = m?.[1] ?? ""
  return p.length === 0 ? "/" : p.startsWith("/") ? p : `/${p}`
}

const make = (options: ManagerOptions): Effect.Effect<Manager, never, Scope.Scope> =>
  Effect.gen(function*() {
    const managerScope = yield* Effect.scope
    const validator = new AjvJsonSchemaValidator()
    const validators = new WeakMap<Tool, ReturnType<typeof validator.getValidator>>()
    const runtimes = new Map<string, ServerRuntime>()
    const retrySchedule = options.retry?.schedule ?? defaultRetry
    const retryTimes = options.retry?.times ?? defaultRetryTimes

    const cache = yield* ToolCache.make({ ...options.config.cache, name: "tools" })

    const handlers = options.handlers
    const connectOptions = (server: string): ConnectOptions => ({
      sdkOptions: {
        capabilities: {
          ...(handlers?.elicitation !== undefined ? { elicitation: { form: { applyDefaults: true } } } : {}),
          ...(handlers?.sampling !== undefined ? { sampling: {} } : {}),
          ...(handlers?.roots !== undefined ? { roots: { listChanged: false } } : {})
        }
      },
      setup: (sdk) => {
        if (handlers?.elicitation !== undefined) {
          const h = handlers.elicitation
          sdk.setRequestHandler("elicitation/create", (request) => Effect.runPromise(h(request.params, server)))
        }
        if (handlers?.sampling !== undefined) {
          const h = handlers.sampling
          sdk.setRequestHandler("sampling/createMessage", (request) => Effect.runPromise(h(request.params, server)) as never)
        }
        if (handlers?.roots !== undefined) {
          const h = handlers.roots
          sdk.setRequestHandler("roots/list", () => Effect.runPromise(Effect.map(h(server), (roots) => ({ roots: [...roots] }))))
        }
      }
    })

    // A pooled session: the SDK session plus, for its lifetime, cache invalidation on list_changed and
    // on a crash (so the cache refetches from the replacement session), and session metrics.
    const connect = options.connect ?? McpClient.connect
    const pool = yield* ConnectionPool.make(encodePoolConfig(options.config.pool), {
      connect: (name, config) =>
        Effect.tap(connect(name, config, connectOptions(name)), (connection) =>
          Effect.gen(function*() {
            yield* cache.watch(connection)
            yield* McpMetrics.trackSession(name, networkTransport(config))
            yield* Effect.forkScoped(
              Effect.flatMap(connection.closed, (reason) => reason === "closed by client" ? Effect.void : cache.invalidate(name))
            )
          }))
    }).pipe(Effect.orDie)

    const lookup = (server: string): Effect.Effect<ServerRuntime, UnknownServerError> =>
      Effect.suspend(() => {
        const rt = runtimes.get(server)
        return rt !== undefined
          ? Effect.succeed(rt)
          : Effect.fail(
            new UnknownServerError({
              server,
              available: [...runtimes.keys()],
              message: `no server named "${server}"; connected: ${[...runtimes.keys()].join(", ") || "(none)"}`
            })
          )
      })

    const noteError = (rt: ServerRuntime) => <E>(cause: Cause.Cause<E>) =>
      Effect.sync(() => {
        const error = Cause.squash(cause) as { _tag?: string; message?: string }
        if (Cause.hasInterruptsOnly(cause)) return
        rt.lastError = { tag: error._tag ?? "Defect", message: error.message ?? String(error), at: Date.now() }
      })

    const addServer = (entry: ServerEntry): Effect.Effect<void, ServerExistsError> =>
      Effect.gen(function*() {
        if (runtimes.has(entry.name)) {
          return yield* new ServerExistsError({ server: entry.name, message: `server "${entry.name}" is already connected` })
        }
        const scope = yield* Scope.fork(managerScope)
        const breaker = yield* CircuitBreaker.make(entry.name, entry.breaker).pipe(Scope.provide(scope))
        yield* Effect.orDie(pool.add(entry.name, entry.config, encodePoolSettings(entry.pool)))
        const rt: ServerRuntime = {
          entry,
          transport: networkTransport(entry.config),
          breaker,
          scope,
          lastError: undefined,
          lastHealthCheck: undefined,
          toolCount: undefined,
          lastUnknownToolRefetch: 0,
          fetchTools: Effect.void as never
        }
        rt.fetchTools = fetchTools(rt)
        runtimes.set(entry.name, rt)
      })


    // The live `tools/list` of a server: breaker → pool → timeout.
    // Built once per server (see addServer): a cache hit allocates no fetch effect.
    const fetchTools = (rt: ServerRuntime): Effect.Effect<ListToolsResult, ListToolsError> =>
      rt.breaker.execute(
        pool.use(rt.entry.name, (c) => c.listTools({ timeout: rt.entry.timeouts.call }))
      ).pipe(Effect.onError(noteError(rt)))

    for (const entry of options.config.servers) yield* Effect.orDie(addServer(entry))

    const listResult = (rt: ServerRuntime, credential: string | undefined) =>
      cache.get(rt.entry.name, rt.fetchTools, { credential }).pipe(
        Effect.tap((r) =>
          rt.toolCount === r.tools.length ? Effect.void : Effect.andThen(
            Effect.sync(() => (rt.toolCount = r.tools.length)),
            McpMetrics.recordToolCount(rt.entry.name, r.tools.length)
          ))
      )

    const findTool = (
      rt: ServerRuntime,
      tool: string,
      credential: string | undefined
    ): Effect.Effect<Tool, ListToolsError | UnknownToolError> =>
      Effect.flatMap(listResult(rt, credential), (list) => {
        const found = list.tools.find((t) => t.name === tool)
        if (found !== undefined) return Effect.succeed(found)
        // The list may be stale: refetch before saying no, at most once a second per server, so callers
        // that guess tool names cannot turn every call into a tools/list.
        const now = Date.now()
        const refetch = now - rt.lastUnknownToolRefetch >= 1_000
        if (refetch) rt.lastUnknownToolRefetch = now
        return (refetch ? Effect.andThen(cache.invalidate(rt.entry.name), listResult(rt, credential)) : Effect.succeed(list)).pipe(
          Effect.flatMap((fresh) => {
            const again = fresh.tools.find((t) => t.name === tool)
            if (again !== undefined) return Effect.succeed(again)
            const names = fresh.tools.map((t) => t.name)
            return Effect.fail(
              new UnknownToolError({
                server: rt.entry.name,
                tool,
                available: names.slice(0, 100),
                message: `server "${rt.entry.name}" has no tool "${tool}"; it has: ${names.slice(0, 20).join(", ")}${names.length > 20 ? ", ..." : ""}`
              })
            )
          })
        )
      })

    const validate = (rt: ServerRuntime, tool: Tool, args: Record<string, unknown>): Effect.Effect<void, InvalidArgumentsError> =>
      Effect.suspend(() => {
        let check = validators.get(tool)
        if (check === undefined) {
          check = validator.getValidator(tool.inputSchema as never)
          validators.set(tool, check)
        }
        const result = check(args)
        return result.valid ? Effect.void : Effect.fail(
          new InvalidArgumentsError({
            server: rt.entry.name,
            tool: tool.name,
            path: pathOf(result.errorMessage),
            message: `arguments of ${rt.entry.name}/${tool.name} fail its inputSchema: ${result.errorMessage}`
          })
        )
      })

    const attempt = (
      rt: ServerRuntime,
      tool: Tool,
      args: Record<string, unknown>,
      callOptions: ManagerCallOptions | undefined
    ): Effect.Effect<CallToolResult, CallToolError> => {
      const t = resolveTimeout(rt.entry.timeouts, tool.name, callOptions)
      if (!t.resetOnProgress && callOptions?.onProgress === undefined) {
        // The common case: one timer, the SDK's.
        const wire: CallOptions = { timeout: t.timeoutMs }
        return rt.breaker.execute(pool.use(rt.entry.name, (c) => c.callTool(tool.name, args, wire)))
      }
      const wire: CallOptions = {
        timeout: t.timeoutMs,
        resetTimeoutOnProgress: t.resetOnProgress,
        // The SDK asks for progress (and resets on it) only when a progress callback is set.
        onProgress: callOptions?.onProgress ?? (() => {}),
        maxTotalTimeout: t.maxMs
      }
      // Inside the pool: waiting for a session does not eat the call's budget. The SDK checks
      // `maxTotalTimeout` only when progress arrives, so Keel enforces the hard maximum itself.
      const call = pool.use(rt.entry.name, (c) =>
        c.callTool(tool.name, args, wire).pipe(
          Effect.timeoutOrElse({
            duration: Duration.millis(t.maxMs),
            orElse: () =>
              Effect.fail(
                new McpTimeoutError({
                  server: rt.entry.name,
                  method: "tools/call",
                  timeoutMs: t.maxMs,
                  message: `tools/call ${tool.name} exceeded its hard maximum of ${t.maxMs} ms`
                })
              )
          })
        ))
      return rt.breaker.execute(call)
    }

    // The hot path: plain combinators (no generator per call), and the retry machinery built only once an
    // attempt has failed with a retryable error.
    const callTool: Manager["callTool"] = (server, toolName, args = {}, callOptions) =>
      Effect.flatMap(lookup(server), (rt) =>
        Effect.flatMap(findTool(rt, toolName, callOptions?.credential), (tool) => {
          const once = attempt(rt, tool, args, callOptions)
          const canRetry = retryable(tool)
          const call = Effect.catch(once, (error) =>
            retryTimes > 0 && canRetry(error)
              ? Effect.retry(once, { schedule: retrySchedule, times: retryTimes - 1, while: canRetry })
              : Effect.fail(error))
          const validated = callOptions?.skipValidation === true ? call : Effect.andThen(validate(rt, tool, args), call)
          return validated.pipe(
            Effect.tapCause(noteError(rt)),
            McpMetrics.track({ server, transport: rt.transport, method: "tools/call", tool: toolName })
          )
        }))

    const statusOf = (rt: ServerRuntime): Effect.Effect<ServerStatus> =>
      Effect.gen(function*() {
        const stats = yield* pool.stats(rt.entry.name).pipe(Effect.orDie)
        return {
          server: rt.entry.name,
          transport: rt.entry.config.type,
          connected: stats.total > 0,
          breaker: yield* rt.breaker.state,
          pool: stats,
          tools: rt.toolCount,
          lastError: rt.lastError,
          lastHealthCheck: rt.lastHealthCheck
        }
      })

    if (options.healthCheckInterval !== undefined) {
      const interval = Duration.fromInputUnsafe(options.healthCheckInterval)
      yield* Effect.forkScoped(
        Effect.suspend(() => Effect.forEach(
          Array.from(runtimes.values()),
          // The pool pings open sessions in place: a health check never starts a session (nor a child
          // process) and never keeps one from its idle timeout; a session that fails is retired.
          (rt) =>
            Effect.flatMap(Effect.orDie(pool.healthCheck(rt.entry.name)), ({ ok, checked }) =>
              Effect.sync(() => {
                if (checked > 0) rt.lastHealthCheck = { ok: ok === checked, at: Date.now() }
              })),
          { discard: true }
        )).pipe(Effect.repeat(Schedule.spaced(interval)))
      )
    }

    const manager: Manager = {
      connect: (name, config, policy = {}) =>
        Effect.gen(function*() {
          const defaults = options.config.defaults
          // A decoded config (secrets already Redacted) is used as it is; one as written in a file is
          // decoded, with `${VAR}` from the environment.
          const entry = isDecoded(config)
            ? { name, config: config as ServerConfig, ...(yield* decodePolicies(policy, defaults, `${name}.keel`)) }
            : yield* decodeServerEntry(name, { ...config, keel: policy }, defaults, process.env, name)
          yield* addServer(entry)
        }),
      disconnect: (name) =>
        Effect.gen(function*() {
          const rt = yield* lookup(name)
          runtimes.delete(name)
          yield* Effect.ignore(pool.remove(name))
          yield* cache.invalidate(name)
          yield* Scope.close(rt.scope, Exit.void)
        }),
      servers: Effect.sync(() => [...runtimes.keys()]),
      listTools: (server, opts) =>
        Effect.flatMap(lookup(server), (rt) => Effect.map(listResult(rt, opts?.credential), (r) => r.tools)),
      callTool,
      ping: (server) =>
        Effect.flatMap(lookup(server), (rt) =>
          rt.breaker.execute(pool.use(server, (c) => c.ping({ timeout: rt.entry.timeouts.call })))),
      status: (server) => Effect.flatMap(lookup(server), statusOf),
      statuses: Effect.suspend(() => Effect.forEach([...runtimes.values()], statusOf)),
      // Subscribing makes breakers publish per-call events; merge only when someone listens.
      breakerEvents: Stream.unwrap(Effect.sync(() =>
        Stream.mergeAll(Array.from(runtimes.values(), (rt) => rt.breaker.events), { concurrency: "unbounded" })
      )),
      breaker: (server) => Effect.map(lookup(server), (rt) => rt.breaker),
      cache,
      pool
    }
    return manager
  })

/** Whether a server config was already decoded: its env or header values are `Redacted`. */
const isDecoded = (config: ServerConfigInput | ServerConfig): boolean => {
  const c = config as { env?: Record<string, unknown>; headers?: Record<string, unknown> }
  return [...Object.values(c.env ?? {}), ...Object.values(c.headers ?? {})].some(Redacted.isRedacted)
}
