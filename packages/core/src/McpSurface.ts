/**
 * Resources, prompts and completions through `McpClientManager`, with the same resilience as `callTool`:
 * every request goes metrics → breaker → pool → timeout (the server's `timeouts.server`, or the call's
 * own `timeout`), and fails with a typed error.
 *
 * ```ts
 * const mcp = yield* McpClientManager
 * const resources = yield* mcp.listResources("docs")
 * const body = yield* mcp.readResource("docs", "demo://readme")
 * const prompt = yield* mcp.getPrompt("docs", "greet", { name: "Ada" })     // arguments checked first
 * const names = yield* mcp.complete("docs", { type: "ref/prompt", name: "greet" }, { name: "name", value: "A" })
 * yield* mcp.subscribeResource("docs", "demo://counter").pipe(Stream.take(1), Stream.runDrain)
 * ```
 *
 * The functions here take a {@link ServerAccess} (what the manager knows about one server); the manager's
 * methods of the same names call them.
 *
 * @since 0.3.0
 */
import type {
  CompleteResult,
  GetPromptResult,
  Prompt,
  PromptReference,
  ReadResourceResult,
  Resource,
  ResourceTemplateReference,
  ResourceTemplateType as ResourceTemplate,
  ResourceUpdatedNotificationParams
} from "@modelcontextprotocol/client"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Cause from "effect/Cause"
import type * as CircuitBreaker from "./CircuitBreaker.ts"
import type { ToolCacheShape } from "./ToolCache.ts"
import type * as ConnectionPool from "./ConnectionPool.ts"
import { displayName, type UnknownServerError } from "./ManagerErrors.ts"
import type { CallOptions, McpConnection } from "./McpClient.ts"
import type { McpError } from "./McpError.ts"
import type { ListLimitError } from "./McpLists.ts"
import * as McpMetrics from "./McpMetrics.ts"

/**
 * The server has no prompt of that name. `available` lists its prompts (the first 100).
 *
 * @since 0.3.0
 * @category errors
 */
export class UnknownPromptError extends Schema.TaggedError<UnknownPromptError>()("UnknownPromptError", {
  server: Schema.String,
  prompt: Schema.String,
  available: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/**
 * The arguments of `getPrompt` do not match the prompt's declared arguments: a required one is missing
 * (`missing`), one is not declared (`unknown`), or a value is not a string. Nothing was sent.
 *
 * @since 0.3.0
 * @category errors
 */
export class InvalidPromptArgumentsError extends Schema.TaggedError<InvalidPromptArgumentsError>()("InvalidPromptArgumentsError", {
  server: Schema.String,
  prompt: Schema.String,
  missing: Schema.Array(Schema.String),
  unknown: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/**
 * Everything a resource, prompt or completion request can fail with (besides the manager's
 * `UnknownServerError`).
 *
 * @since 0.3.0
 * @category errors
 */
export type SurfaceError = McpError | CircuitBreaker.CircuitOpenError | ConnectionPool.PoolError

/**
 * What the manager knows about one server, for the functions of this module.
 *
 * @since 0.3.0
 * @category models
 */
export interface ServerAccess {
  readonly server: string
  /** `pipe` (stdio) or `tcp` (HTTP), the `network.transport` of metrics. */
  readonly transport: "pipe" | "tcp"
  readonly breaker: CircuitBreaker.Breaker
  readonly pool: ConnectionPool.ConnectionPoolShape
  /** The server's request timeout (its `timeouts.server`), in ms. */
  readonly timeoutMs: number
  /** Records a server failure as the server's `lastError`. */
  readonly noteError?: ((cause: Cause.Cause<unknown>) => Effect.Effect<void>) | undefined
  /**
   * The manager's `ToolCache`, which also holds the prompt, resource and resource-template lists (see
   * {@link listKey}); without it every list is fetched live.
   */
  readonly cache?: ToolCacheShape | undefined
}

/** The lists this module caches, by the `list_changed` notification that invalidates each. */
export type ListKind = "prompts" | "resources" | "resourceTemplates"

/**
 * The cache key of a list of `server` in the `ToolCache`'s `KeyedCache`: `"<server> (<kind>)"`, next to
 * the tool list's own key (the server name), so each list has its own entry, its own `ttlMs` /
 * `cacheScope` hints, and its own invalidation (`prompts/list_changed` drops the prompts; the resources
 * and resource templates both go on `resources/list_changed`; a `tools/list_changed` drops none of them).
 *
 * @since 0.3.0
 * @category caching
 */
export const listKey = (server: string, kind: ListKind): string => `${server} (${kind})`

/** Sessions whose list changes already invalidate the cache (one watcher per session and cache). */
const watched = new WeakMap<McpConnection, WeakSet<ToolCacheShape>>()

/**
 * Invalidates the cached lists of `server` on the session's own `list_changed` notifications, for the
 * life of the session (the watcher ends when the session's notification stream does). Once per session
 * and cache: a plain `WeakMap` check on later borrows.
 */
const watch = (access: ServerAccess, c: McpConnection): Effect.Effect<void> => {
  const cache = access.cache
  if (cache === undefined) return Effect.void
  let caches = watched.get(c)
  if (caches?.has(cache) === true) return Effect.void
  if (caches === undefined) watched.set(c, (caches = new WeakSet()))
  caches.add(cache)
  const server = access.server
  return Effect.asVoid(Effect.forkDetach(
    Stream.runForEach(c.listChanged, (kind) =>
      kind === "prompts"
        ? cache.invalidate(listKey(server, "prompts"))
        : kind === "resources"
        ? Effect.andThen(cache.invalidate(listKey(server, "resources")), cache.invalidate(listKey(server, "resourceTemplates")))
        : Effect.void)
  ))
}

/**
 * A list through the cache (when the access has one): a fresh entry is served; a miss fetches once for
 * every concurrent caller; a `list_changed` during the fetch detaches it (the `KeyedCache` drops a fetch
 * whose key was invalidated meanwhile), so a list that changed under a fetch is never cached stale.
 */
const cachedList = <A extends object, E, R>(
  access: ServerAccess,
  kind: ListKind,
  fetch: Effect.Effect<A, E, R>,
  credential: string | undefined
): Effect.Effect<A, E, R> =>
  access.cache === undefined
    ? fetch
    : access.cache.get(listKey(access.server, kind), fetch as never, credential !== undefined ? { credential } : undefined) as never

/** Per-call options: a timeout for this request; `credential` keeps `private` lists apart (as `ToolCache`). */
export interface SurfaceOptions {
  readonly timeout?: CallOptions["timeout"]
  readonly credential?: string | undefined
}

const callOptions = (access: ServerAccess, options: SurfaceOptions | undefined): CallOptions => ({
  timeout: options?.timeout ?? access.timeoutMs
})

/** Retries of a request whose session failed to connect or closed under it (every method here is read-only). */
const RETRIES = 2
const retrySchedule = Schedule.exponential(50).pipe(Schedule.jittered)
const isRetryable = (e: { readonly _tag: string }): boolean => e._tag === "McpConnectError" || e._tag === "McpClosedError"

/**
 * One request: metrics → retry → breaker → pool → (the connection's own timeout). Like `callTool` for a
 * read-only tool, a failed connect or a session that closed under the request is retried (at most
 * {@link RETRIES} times, each attempt asking the breaker again); a retry the breaker rejects gives back the
 * first error.
 *
 * The common case (a closed breaker, a warm session free now) takes one fused step, as `McpClientManager`'s
 * `callTool` does ({@link FusedRequest}); the outcomes, counts and metrics are the same either way.
 *
 * @since 0.3.0
 * @category requests
 */
export const run = <A, E extends { readonly _tag: string }>(
  access: ServerAccess,
  method: string,
  f: (c: McpConnection) => Effect.Effect<A, E>
): Effect.Effect<A, E | CircuitBreaker.CircuitOpenError | ConnectionPool.PoolError> => {
  const once = access.breaker.execute(access.pool.use(access.server, (c) => Effect.andThen(watch(access, c), f(c)))) as Effect.Effect<
    A,
    E | CircuitBreaker.CircuitOpenError | ConnectionPool.PoolError
  >
  if (access.breaker.tryAcquireUnsafe !== undefined && access.pool.tryLeaseUnsafe !== undefined) {
    // Decided when the effect runs, each time it runs (its own permit, lease and timer).
    return Effect.suspend(() => new FusedRequest(access, method, f, once).effect)
  }
  const attempt = Effect.catch(once, (first) => retryAfter(once, first))
  return (access.noteError !== undefined ? Effect.tapCause(attempt, access.noteError) : attempt).pipe(
    McpMetrics.track({ server: access.server, transport: access.transport, method })
  )
}

/** After a failed attempt: the retries of {@link run}, or the failure itself. */
const retryAfter = <A, E extends { readonly _tag: string }>(once: Effect.Effect<A, E>, first: E): Effect.Effect<A, E> =>
  isRetryable(first)
    ? Effect.retry(once, { schedule: retrySchedule, times: RETRIES - 1, while: isRetryable }).pipe(
      Effect.catchTag("CircuitOpenError" as never, () => Effect.fail(first))
    ) as Effect.Effect<A, E>
    : Effect.fail(first)

/**
 * The end of an attempt that took its session with `ConnectionPool.tryLeaseUnsafe` and its permit with
 * `Breaker.tryAcquireUnsafe`, as `pool.use` and `breaker.execute` end: the session back to the pool, the
 * outcome to the breaker. `undefined` when both were done synchronously, else the effect that finishes
 * them (waiters to wake, a transition to publish). `McpClientManager`'s fused `callTool` ends the same way.
 *
 * @since 0.3.0
 * @category requests
 */
export const settleLease = (
  lease: ConnectionPool.SyncLease,
  breaker: CircuitBreaker.Breaker,
  generation: number,
  start: number,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<void> | undefined => {
  const released = lease.release()
  const recorded = breaker.recordUnsafe!(generation, start, exit)
  return released === undefined ? recorded : recorded === undefined ? released : Effect.andThen(released, recorded)
}

/**
 * {@link run}'s common case in one step: the closed breaker's permit (`tryAcquireUnsafe`) and a warm
 * session (`ConnectionPool.tryLeaseUnsafe`) taken as plain calls and the metrics timer started
 * (`McpMetrics.startUnsafe`) in one `Effect.withFiber`, with two finalizers (the session back and the
 * outcome to the breaker; the metrics and `lastError`) instead of `breaker.execute` → `pool.use` →
 * `McpMetrics.track`. When no permit or no session is to be had at once, the attempt is the general one
 * (which waits). A failed attempt is retried as in {@link run}; the metrics cover every attempt.
 */
class FusedRequest<A, E extends { readonly _tag: string }> {
  readonly access: ServerAccess
  readonly method: string
  readonly f: (c: McpConnection) => Effect.Effect<A, E>
  readonly once: Effect.Effect<A, E | CircuitBreaker.CircuitOpenError | ConnectionPool.PoolError>
  lease: ConnectionPool.SyncLease | undefined = undefined
  generation = 0
  /** `Clock` ms when the permit was taken (the breaker's call duration). */
  start = 0
  timer: McpMetrics.OperationTimer | undefined = undefined
  readonly effect: Effect.Effect<A, E | CircuitBreaker.CircuitOpenError | ConnectionPool.PoolError>

  constructor(
    access: ServerAccess,
    method: string,
    f: (c: McpConnection) => Effect.Effect<A, E>,
    once: Effect.Effect<A, E | CircuitBreaker.CircuitOpenError | ConnectionPool.PoolError>
  ) {
    this.access = access
    this.method = method
    this.f = f
    this.once = once
    // Each finalizer is installed before the step that needs it runs.
    const attempt = Effect.onExitPrimitive(Effect.withFiber((fiber) => this.step(fiber)), (exit) => this.endAttempt(exit))
    this.effect = Effect.onExitPrimitive(Effect.catch(attempt, (first) => retryAfter(once, first)), (exit) => this.endCall(exit))
  }

  step(fiber: Fiber.Fiber<unknown, unknown>): Effect.Effect<A, E | CircuitBreaker.CircuitOpenError | ConnectionPool.PoolError> {
    const { access } = this
    this.timer = McpMetrics.startUnsafe({ server: access.server, transport: access.transport, method: this.method }, fiber.context)
    const generation = access.breaker.tryAcquireUnsafe!()
    const lease = generation === undefined ? undefined : access.pool.tryLeaseUnsafe!(access.server)
    if (lease === undefined) return this.once
    this.lease = lease
    this.generation = generation!
    this.start = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    return Effect.andThen(watch(access, lease.connection), this.f(lease.connection))
  }

  /** The session back to the pool, the outcome to the breaker ({@link settleLease}). */
  endAttempt(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> | undefined {
    const lease = this.lease
    if (lease === undefined) return undefined
    this.lease = undefined
    return settleLease(lease, this.access.breaker, this.generation, this.start, exit)
  }

  /** The metrics of the whole request, every attempt included, and `lastError`. */
  endCall(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> | undefined {
    if (this.timer !== undefined) McpMetrics.finishUnsafe(this.timer, exit)
    return exit._tag === "Failure" && this.access.noteError !== undefined ? this.access.noteError(exit.cause) : undefined
  }
}

/** `resources/list`, every page. @since 0.3.0 @category resources */
export const listResources = (
  access: ServerAccess,
  options?: SurfaceOptions
): Effect.Effect<ReadonlyArray<Resource>, SurfaceError | ListLimitError> =>
  Effect.map(
    cachedList(access, "resources", run(access, "resources/list", (c) => c.listResources(callOptions(access, options))), options?.credential),
    (r) => r.resources
  )

/** `resources/templates/list`, every page. @since 0.3.0 @category resources */
export const listResourceTemplates = (
  access: ServerAccess,
  options?: SurfaceOptions
): Effect.Effect<ReadonlyArray<ResourceTemplate>, SurfaceError | ListLimitError> =>
  Effect.map(
    cachedList(
      access,
      "resourceTemplates",
      run(access, "resources/templates/list", (c) => c.listResourceTemplates(callOptions(access, options))),
      options?.credential
    ),
    (r) => r.resourceTemplates
  )

/** `resources/read`. @since 0.3.0 @category resources */
export const readResource = (
  access: ServerAccess,
  uri: string,
  options?: SurfaceOptions
): Effect.Effect<ReadResourceResult, SurfaceError> =>
  run(access, "resources/read", (c) => c.readResource(uri, callOptions(access, options)))

/**
 * {@link subscribeResource}'s options: {@link SurfaceOptions}, and what happens when the session the
 * subscription lives on closes.
 *
 * @since 0.3.0
 * @category resources
 */
export interface SubscribeOptions extends SurfaceOptions {
  /**
   * When the session closes (the server crashed, was restarted, the HTTP session expired): subscribe again
   * on a session the pool lends, waiting by this schedule before each attempt and between failed attempts
   * (its state carries over, so repeated losses back off). Default: exponential from 100 ms, capped at 5 s,
   * for as long as the stream is consumed. `false`: the stream ends with the session, as a bare SDK
   * subscription does.
   */
  readonly resubscribe?: Schedule.Schedule<unknown, unknown> | false | undefined
}

/** {@link SubscribeOptions.resubscribe}'s default. */
const defaultResubscribe: Schedule.Schedule<unknown, unknown> = Schedule.min([
  Schedule.exponential("100 millis"),
  Schedule.spaced("5 seconds")
])

/**
 * The updates of one resource as a stream: a session is borrowed from the pool and the resource subscribed
 * (through the breaker, timed like any request) when the stream starts; when the stream ends (its consumer's
 * scope closes, or `Stream.take` has enough) the resource is unsubscribed and the session returned.
 *
 * A failure to subscribe at first fails the stream. If the session closes later, the resource is
 * subscribed again on another session ({@link SubscribeOptions.resubscribe}); since updates sent in
 * between are lost, the stream then emits one update for `uri` as soon as the new subscription holds, so
 * a consumer that re-reads on every update misses nothing.
 *
 * @example
 * ```ts
 * import { McpSurface } from "@keel/core"
 * import { Effect, Stream } from "effect"
 *
 * // Re-read the counter on every change, across server restarts.
 * const follow = (docs: McpSurface.ServerAccess) =>
 *   McpSurface.subscribeResource(docs, "demo://counter").pipe(
 *     Stream.mapEffect(({ uri }) => McpSurface.readResource(docs, uri)),
 *     Stream.runForEach((r) => Effect.log(r.contents))
 *   )
 * ```
 *
 * @since 0.3.0
 * @category resources
 */
export const subscribeResource = (
  access: ServerAccess,
  uri: string,
  options?: SubscribeOptions
): Stream.Stream<ResourceUpdatedNotificationParams, SurfaceError> => {
  const subscribed = (again: boolean) =>
    Stream.unwrap(
      Effect.gen(function*() {
        const c = yield* access.pool.get(access.server)
        yield* watch(access, c)
        const updates = yield* access.breaker.execute(c.subscribeResource(uri, callOptions(access, options))).pipe(
          McpMetrics.track({ server: access.server, transport: access.transport, method: "resources/subscribe" })
        )
        return again ? Stream.prepend(updates, [{ uri }]) : updates
      })
    )
  const schedule = options?.resubscribe ?? defaultResubscribe
  if (schedule === false) return subscribed(false)
  // Each later subscription's own failures are retried, and a subscription that ends (its session closed)
  // is made again, both waiting by the schedule.
  return Stream.concat(subscribed(false), subscribed(true).pipe(Stream.retry(schedule), Stream.repeat(schedule)))
}

/** `prompts/list`, every page. @since 0.3.0 @category prompts */
export const listPrompts = (
  access: ServerAccess,
  options?: SurfaceOptions
): Effect.Effect<ReadonlyArray<Prompt>, SurfaceError | ListLimitError> =>
  Effect.map(
    cachedList(access, "prompts", run(access, "prompts/list", (c) => c.listPrompts(callOptions(access, options))), options?.credential),
    (r) => r.prompts
  )

/**
 * Why `args` do not fit `prompt`'s declared arguments, or `undefined` when they do.
 *
 * @since 0.3.0
 * @category prompts
 */
export const checkPromptArguments = (
  server: string,
  prompt: Prompt,
  args: Record<string, unknown>
): InvalidPromptArgumentsError | undefined => {
  const declared = prompt.arguments ?? []
  const missing = declared.filter((a) => a.required === true && args[a.name] === undefined).map((a) => a.name)
  const unknown = Object.keys(args).filter((k) => !declared.some((a) => a.name === k))
  const notStrings = Object.entries(args).filter(([, v]) => v !== undefined && typeof v !== "string").map(([k]) => k)
  if (missing.length === 0 && unknown.length === 0 && notStrings.length === 0) return undefined
  const parts = [
    missing.length > 0 ? `missing required ${missing.map(displayName).join(", ")}` : undefined,
    unknown.length > 0 ? `not declared: ${unknown.map(displayName).join(", ")} (declared: ${declared.map((a) => displayName(a.name)).join(", ") || "none"})` : undefined,
    notStrings.length > 0 ? `not strings: ${notStrings.map(displayName).join(", ")}` : undefined
  ].filter((p): p is string => p !== undefined)
  return new InvalidPromptArgumentsError({
    server,
    prompt: prompt.name,
    missing,
    unknown: [...unknown, ...notStrings.filter((k) => !unknown.includes(k))],
    message: `arguments of prompt ${displayName(server)}/${displayName(prompt.name)}: ${parts.join("; ")}`
  })
}

/**
 * `prompts/get`, after checking `args` against the prompt's declared arguments (from `prompts` when given,
 * else a `prompts/list`): an unknown prompt is {@link UnknownPromptError}, bad arguments
 * {@link InvalidPromptArgumentsError}; neither sends `prompts/get`.
 *
 * @since 0.3.0
 * @category prompts
 */
export const getPrompt = (
  access: ServerAccess,
  name: string,
  args: Record<string, string> = {},
  options?: SurfaceOptions & { readonly prompts?: Effect.Effect<ReadonlyArray<Prompt>, SurfaceError | ListLimitError> }
): Effect.Effect<GetPromptResult, SurfaceError | ListLimitError | UnknownPromptError | InvalidPromptArgumentsError> =>
  Effect.flatMap(options?.prompts ?? listPrompts(access, options), (prompts): Effect.Effect<
    GetPromptResult,
    SurfaceError | UnknownPromptError | InvalidPromptArgumentsError
  > => {
    const prompt = prompts.find((p) => p.name === name)
    if (prompt === undefined) {
      const names = prompts.map((p) => p.name)
      return Effect.fail(
        new UnknownPromptError({
          server: access.server,
          prompt: name,
          available: names.slice(0, 100),
          message: `server "${displayName(access.server)}" has no prompt "${displayName(name)}"; it has: ${names.slice(0, 20).map(displayName).join(", ") || "(none)"}`
        })
      )
    }
    const bad = checkPromptArguments(access.server, prompt, args)
    if (bad !== undefined) return Effect.fail(bad)
    return run(access, "prompts/get", (c) => c.getPrompt(name, args, callOptions(access, options)))
  })

/**
 * `completion/complete` for an argument of a prompt (`{ type: "ref/prompt", name }`) or a resource
 * template (`{ type: "ref/resource", uri: <template> }`); `context` carries the values of the other
 * arguments already chosen.
 *
 * @since 0.3.0
 * @category completions
 */
export const complete = (
  access: ServerAccess,
  ref: PromptReference | ResourceTemplateReference,
  argument: { readonly name: string; readonly value: string },
  context?: Record<string, string>,
  options?: SurfaceOptions
): Effect.Effect<CompleteResult["completion"], SurfaceError> =>
  Effect.map(
    run(access, "completion/complete", (c) => c.complete(ref, argument, context, callOptions(access, options))),
    (r) => r.completion
  )

/**
 * The {@link ServerAccess} of one server of a manager, from its public operations (the breaker, the pool,
 * the transport); `timeoutMs` defaults to 30 s.
 *
 * @since 0.3.0
 * @category constructors
 */
export const accessOf = (
  manager: {
    readonly breaker: (server: string) => Effect.Effect<CircuitBreaker.Breaker, UnknownServerError>
    readonly status: (server: string) => Effect.Effect<{ readonly transport: "stdio" | "http" | "sse" }, UnknownServerError>
    readonly pool: ConnectionPool.ConnectionPoolShape
    readonly cache?: ToolCacheShape | undefined
  },
  server: string,
  timeoutMs = 30_000
): Effect.Effect<ServerAccess, UnknownServerError> =>
  Effect.gen(function*() {
    const breaker = yield* manager.breaker(server)
    const status = yield* manager.status(server)
    return {
      server,
      transport: status.transport === "stdio" ? "pipe" : "tcp",
      breaker,
      pool: manager.pool,
      timeoutMs,
      cache: manager.cache
    }
  })
