/**
 * `SessionHooks`: what the {@link ConnectionPool} does with each session it opens, beyond opening it. The
 * pool reads this service when it is built; the default does nothing, so a pool on its own opens plain
 * sessions.
 *
 * {@link layer} (what `McpClientManager`'s default graph gives its pool) provides hooks that declare the client's capabilities and request handlers
 * (elicitation, sampling, roots), let the `ToolCache` watch each session for `tools/list_changed` and for
 * crashes, and record session metrics. A program with its own needs (a log line per session, a custom
 * notification handler) provides its own layer, or combines with {@link SessionHooks.combine}.
 *
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { ConnectionPool, SessionHooks } from "@keel/core"
 *
 * const logged = Layer.succeed(SessionHooks, {
 *   connectOptions: () => ({}),
 *   onSession: (server) => Effect.log(`new session of ${server}`)
 * })
 * const pool = ConnectionPool.layer().pipe(Layer.provide(logged))
 * ```
 *
 * @since 0.2.0
 */
import type { ElicitRequest, ElicitResult } from "@modelcontextprotocol/client"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { ConnectOptions, McpConnection } from "./McpClient.ts"
import * as McpMetrics from "./McpMetrics.ts"
import { networkTransport, type ServerConfig } from "./ServerConfig.ts"
import { ToolCache, type ToolCacheShape } from "./ToolCache.ts"

/**
 * The hooks' operations.
 *
 * @since 0.2.0
 * @category models
 */
export interface SessionHooksShape {
  /** Options for every new session of `server` (client capabilities, request handlers, settings). */
  readonly connectOptions: (server: string) => ConnectOptions
  /**
   * Runs once for each session that opened, in the session's own scope (it closes with the session), before
   * the session is lent. Forks that watch the session belong here (`Effect.forkScoped`).
   */
  readonly onSession: (
    server: string,
    config: ServerConfig,
    connection: McpConnection
  ) => Effect.Effect<void, never, Scope.Scope>
}

/**
 * Hooks that do nothing (the default).
 *
 * @since 0.2.0
 * @category constructors
 */
export const none: SessionHooksShape = {
  connectOptions: () => ({}),
  onSession: () => Effect.void
}

/**
 * The session hooks service: a `Context.Reference` whose default is {@link none}.
 *
 * @since 0.2.0
 * @category services
 */
export const SessionHooks: Context.Reference<SessionHooksShape> = Context.Reference<SessionHooksShape>(
  "@keel/core/SessionHooks",
  { defaultValue: () => none }
)

/**
 * Both hooks, `first` then `second`: connect options are merged shallowly (`second` wins, `setup`
 * functions both run), `onSession` runs both in order.
 *
 * @since 0.2.0
 * @category combinators
 */
export const combine = (first: SessionHooksShape, second: SessionHooksShape): SessionHooksShape => ({
  connectOptions: (server) => {
    const a = first.connectOptions(server)
    const b = second.connectOptions(server)
    const setup = a.setup !== undefined && b.setup !== undefined
      ? (client: Parameters<NonNullable<ConnectOptions["setup"]>>[0]) => {
        a.setup!(client)
        b.setup!(client)
      }
      : (b.setup ?? a.setup)
    return { ...a, ...b, ...(setup !== undefined ? { setup } : {}) }
  },
  onSession: (server, config, connection) =>
    Effect.andThen(first.onSession(server, config, connection), second.onSession(server, config, connection))
})

/**
 * Handlers for requests a server sends to the client. Each one set declares its capability: with
 * `elicitation`, `elicitation` (form mode, with `applyDefaults`); with `sampling`, `sampling`; with
 * `roots`, `roots`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientHandlers {
  readonly elicitation?: ((request: ElicitRequest["params"], server: string) => Effect.Effect<ElicitResult>) | undefined
  readonly sampling?: ((request: unknown, server: string) => Effect.Effect<unknown>) | undefined
  readonly roots?: ((server: string) => Effect.Effect<ReadonlyArray<{ readonly uri: string; readonly name?: string }>>) | undefined
}

/** The capabilities the handlers that are set declare. */
const capabilitiesOf = (handlers: ClientHandlers) => ({
  ...(handlers.elicitation !== undefined ? { elicitation: { form: { applyDefaults: true } } } : {}),
  ...(handlers.sampling !== undefined ? { sampling: {} } : {}),
  ...(handlers.roots !== undefined ? { roots: { listChanged: false } } : {})
})

/**
 * Hooks that declare the handlers' capabilities and answer the server's requests with them.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fromHandlers = (handlers: ClientHandlers): SessionHooksShape => {
  const capabilities = capabilitiesOf(handlers)
  return {
    connectOptions: (server) => ({
      sdkOptions: { capabilities },
      setup: (sdk) => {
        const { elicitation, roots, sampling } = handlers
        if (elicitation !== undefined) {
          sdk.setRequestHandler("elicitation/create", (request) => Effect.runPromise(elicitation(request.params, server)))
        }
        if (sampling !== undefined) {
          sdk.setRequestHandler("sampling/createMessage", (request) => Effect.runPromise(sampling(request.params, server)) as never)
        }
        if (roots !== undefined) {
          sdk.setRequestHandler("roots/list", () => Effect.runPromise(Effect.map(roots(server), (list) => ({ roots: [...list] }))))
        }
      }
    }),
    onSession: () => Effect.void
  }
}

/**
 * Hooks that keep a {@link ToolCacheShape} right about every session, for the session's lifetime: a
 * `tools/list_changed` invalidates the server's entries, and so does a session that closes for any reason
 * but "closed by client" (a crash: the cache refetches from the replacement session). Session metrics
 * (`mcp.client.session.duration`, `keel.server.connected`) are recorded too.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fromToolCache = (cache: ToolCacheShape): SessionHooksShape => ({
  connectOptions: () => ({}),
  onSession: (server, config, connection) =>
    Effect.andThen(
      Effect.andThen(cache.watch(connection), McpMetrics.trackSession(server, networkTransport(config))),
      Effect.forkScoped(
        Effect.flatMap(connection.closed, (reason) => reason === "closed by client" ? Effect.void : cache.invalidate(server))
      )
    )
})

/**
 * The hooks `McpClientManager`'s default graph gives its pool: {@link fromToolCache} over the `ToolCache`
 * service (the same one the manager reads, by layer memoisation) combined with {@link fromHandlers}.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (handlers: ClientHandlers = {}): Layer.Layer<never, never, ToolCache> =>
  Layer.effect(SessionHooks, Effect.map(Effect.service(ToolCache), (cache) => combine(fromToolCache(cache), fromHandlers(handlers))))
