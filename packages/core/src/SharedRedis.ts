/**
 * Redis for Keel's scale-out, never a single point of failure.
 *
 * `SharedRedis` wraps Effect's `Redis` service (`effect/persistence/Redis`), implemented for Node by
 * `@effect/platform-node`'s `NodeRedis` over the `redis` 6 client, with what a shared store needs when it
 * sits beside every tool call:
 *
 * - **Fail open, bounded.** Every command goes through {@link SharedRedisShape.guard}: it is bounded by
 *   `commandTimeout` (and by the caller's own timeout), fails fast while Redis is known to be down
 *   (the client is offline, or a command failed or timed out less than `retryInterval` ago), and counts the
 *   failure in `keel_shared_state_errors_total`. Callers then use their local state.
 * - **Never blocks start-up.** The client connects in a background fiber; until it is ready every
 *   feature is local. A Redis that is down at start is used once it comes up.
 * - **Comes back by itself.** The client reconnects with a capped backoff (a caller-supplied
 *   `reconnectStrategy`, so `NodeRedis` never gives up), offline commands fail at once
 *   (`disableOfflineQueue`), a heartbeat `PING` every `retryInterval` notices a stalled Redis recovering,
 *   and each return from down to up logs one line, sets `keel_shared_state_available` to 1 and runs the
 *   registered resync hooks (pub/sub messages sent while the replica was cut off are lost: the hooks
 *   re-read the shared state).
 * - **One pub/sub channel** (`<keyPrefix>events`) for breaker transitions and tool-list invalidations;
 *   each message names the replica that sent it, and a replica ignores its own messages.
 *
 * @since 0.3.0
 */
// Types only: the module (and the `redis` client under it, optional peers of @keel/core) is loaded when a
// `keel.redis` section is used, so Keel without Redis never needs them installed.
import type { NodeRedis } from "@effect/platform-node/NodeRedis"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as References from "effect/References"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Redis from "effect/persistence/Redis"
import { type RedisConfig, redisClientOptions } from "./ScaleOutConfig.ts"

/**
 * A shared-state operation did not reach Redis (down, stalled, or an error); the caller falls back to local
 * state. Never surfaces from a tool call.
 *
 * @since 0.3.0
 * @category errors
 */
export class SharedStateUnavailable extends Schema.TaggedError<SharedStateUnavailable>()("SharedStateUnavailable", {
  operation: Schema.String,
  reason: Schema.Literals(["unavailable", "timeout", "error"])
}) {}

/**
 * `keel.shared_state.errors`: shared-state operations that fell back to local state, by `operation` and
 * `reason` (`unavailable`: Redis known down, not tried; `timeout`: stalled past `commandTimeout`; `error`).
 *
 * @since 0.3.0
 * @category metrics
 */
export const sharedStateErrors = Metric.counter("keel_shared_state_errors", {
  description: "Shared-state (Redis) operations that fell back to local state, by operation and reason",
  incremental: true
})

/**
 * `keel.shared_state.available`: 1 while Redis is in use, 0 while Keel runs on local state.
 *
 * @since 0.3.0
 * @category metrics
 */
export const sharedStateAvailable = Metric.gauge("keel_shared_state_available", {
  description: "Whether the shared state (Redis) is in use (1) or Keel runs on local state (0)"
})

/**
 * A message on the pub/sub channel.
 *
 * @since 0.3.0
 * @category models
 */
export interface BusMessage {
  /** The kind (`breaker`, `tools`), routing it to its handler. */
  readonly kind: string
  /** The replica that sent it. */
  readonly origin: string
  /** Epoch millis it was sent (for the propagation-delay metric). */
  readonly sentAt: number
  readonly [key: string]: unknown
}

/**
 * @since 0.3.0
 * @category models
 */
export interface SharedRedisShape {
  readonly config: RedisConfig
  /** `keyPrefix`: every key and the channel start with it. */
  readonly prefix: string
  /** This replica's id (random per process), the `origin` of its messages. */
  readonly replicaId: string
  /** Whether Redis is in use now (synchronous, no I/O). */
  readonly isAvailable: () => boolean
  /** Effect's `Redis` service once connected (for Effect's Redis-backed stores), else `undefined`. */
  readonly redis: () => Redis.Redis["Service"] | undefined
  /**
   * Runs `f` against Redis, bounded by `commandTimeout`, failing with {@link SharedStateUnavailable} at once
   * while Redis is down. A failure marks Redis down for `retryInterval`.
   */
  readonly guard: <A, E>(
    operation: string,
    f: (redis: Redis.Redis["Service"]) => Effect.Effect<A, E>
  ) => Effect.Effect<A, SharedStateUnavailable>
  /** `guard` around one command. */
  readonly send: <A = unknown>(operation: string, command: string, ...args: ReadonlyArray<string>) => Effect.Effect<A, SharedStateUnavailable>
  /** Publishes on the channel; a failure is counted and logged, never raised. */
  readonly publish: (kind: string, body: Record<string, unknown>) => Effect.Effect<void>
  /** Registers the handler of a message kind (messages from this replica are not delivered). */
  readonly onMessage: (kind: string, handler: (message: BusMessage) => Effect.Effect<void>) => Effect.Effect<void>
  /** Registers a hook run each time Redis becomes available (first connect and every return). */
  readonly onAvailable: (hook: Effect.Effect<void>) => Effect.Effect<void>
}

const randomId = (): string => `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 10)}`

/**
 * Makes the service; the connection and the subscription live in background fibers of the scope.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (config: RedisConfig): Effect.Effect<SharedRedisShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const prefix = config.keyPrefix
    const channel = `${prefix}events`
    const replicaId = randomId()
    const commandTimeout = config.commandTimeout
    const retryIntervalMs = Duration.toMillis(config.retryInterval)
    const handlers = new Map<string, (message: BusMessage) => Effect.Effect<void>>()
    const availableHooks: Array<Effect.Effect<void>> = []
    const runFork = Effect.runForkWith(yield* Effect.context<never>())

    let redis: Redis.Redis["Service"] | undefined
    let client: NodeRedis["Service"]["client"] | undefined
    let downUntil = 0
    let available = false
    let resyncRunning = false
    let closing = false

    const gauge = (v: number) => Metric.update(sharedStateAvailable, v)
    yield* gauge(0)

    const becameAvailable: Effect.Effect<void> = Effect.suspend(() => {
      if (available || closing) return Effect.void
      available = true
      downUntil = 0
      // Twice: at once, and once the subscriber connection (which reconnects on its own schedule, up to
      // retryInterval) is surely back, so a message published in between is not lost for good.
      const runHooks = Effect.forEach(availableHooks, (h) => Effect.ignoreCause(h), { discard: true })
      const hooks = resyncRunning ? Effect.void : Effect.ensuring(
        Effect.andThen(runHooks, Effect.andThen(Effect.sleep(Duration.millis(2 * retryIntervalMs + 100)), runHooks)),
        Effect.sync(() => {
          resyncRunning = false
        })
      )
      resyncRunning = true
      return Effect.andThen(
        Effect.andThen(Effect.logInfo(`keel: shared state (Redis) available, sharing resumes`), gauge(1)),
        Effect.forkIn(hooks, scope)
      ).pipe(Effect.asVoid)
    })

    const markDown = (operation: string, reason: "timeout" | "error", cause: unknown): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        downUntil = now + retryIntervalMs
        if (!available || closing) return Effect.void
        available = false
        return Effect.andThen(
          Effect.logWarning(
            `keel: shared state (Redis) unavailable (${operation}: ${reason}), using local state; retrying every ${retryIntervalMs} ms`,
            String(cause instanceof Error ? cause.message : cause).slice(0, 200)
          ),
          gauge(0)
        )
      })

    const count = (operation: string, reason: SharedStateUnavailable["reason"]) =>
      Metric.update(Metric.withAttributes(sharedStateErrors, { operation, reason }), 1)

    const usable = (now: number): Redis.Redis["Service"] | undefined =>
      redis !== undefined && client?.isReady === true && now >= downUntil ? redis : undefined

    const guard = <A, E>(
      operation: string,
      f: (redis: Redis.Redis["Service"]) => Effect.Effect<A, E>
    ): Effect.Effect<A, SharedStateUnavailable> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const r = usable(now)
        if (r === undefined) {
          // The client went offline (it reconnects by itself): that is an outage too.
          const offline = available && redis !== undefined && client?.isReady !== true
            ? markDown(operation, "error", "client offline, reconnecting")
            : Effect.void
          return Effect.andThen(
            Effect.andThen(offline, count(operation, "unavailable")),
            Effect.fail(new SharedStateUnavailable({ operation, reason: "unavailable" }))
          )
        }
        return f(r).pipe(
          Effect.timeoutOrElse({
            duration: commandTimeout,
            orElse: () => Effect.fail({ _timeout: true } as const)
          }),
          Effect.matchEffect({
            onSuccess: (a) => Effect.as(available ? Effect.void : becameAvailable, a),
            onFailure: (e) => {
              const reason = typeof e === "object" && e !== null && "_timeout" in e ? "timeout" as const : "error" as const
              return Effect.andThen(
                Effect.andThen(count(operation, reason), markDown(operation, reason, e)),
                Effect.fail(new SharedStateUnavailable({ operation, reason }))
              )
            }
          })
        )
      })

    const send = <A = unknown>(operation: string, command: string, ...args: ReadonlyArray<string>) =>
      guard(operation, (r) => r.send<A>(command, ...args))

    const publish = (kind: string, body: Record<string, unknown>): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (sentAt) =>
        Effect.ignore(send("publish", "PUBLISH", channel, JSON.stringify({ ...body, kind, origin: replicaId, sentAt }))))

    const dispatch = (text: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        let message: BusMessage
        try {
          message = JSON.parse(text) as BusMessage
        } catch {
          return Effect.void
        }
        if (message.origin === replicaId) return Effect.void
        const handler = handlers.get(message.kind)
        return handler === undefined ? Effect.void : Effect.ignoreCause(handler(message))
      })

    // The subscription: one channel for every kind; re-subscribed after a terminal failure.
    const listen = (r: Redis.Redis["Service"]): Effect.Effect<never> =>
      Effect.scoped(
        Effect.flatMap(r.subscribe(channel), (queue) => Effect.forever(Effect.flatMap(Queue.take(queue), (m) => dispatch(m.message))))
      ).pipe(
        Effect.catchCause((cause) => Effect.andThen(Effect.logDebug("keel: Redis subscription ended, re-subscribing", cause), Effect.sleep(config.retryInterval))),
        Effect.forever
      )

    const connect = Effect.gen(function*() {
      const NodeRedisModule = yield* Effect.tryPromise(() => import("@effect/platform-node/NodeRedis"))
      const options = redisClientOptions(config)
      const connectTimeoutMs = Duration.toMillis(config.connectTimeout)
      // NodeRedis logs a warning per failed reconnect attempt and connection; Keel logs one line per outage.
      const context = yield* Layer.buildWithScope(
        NodeRedisModule.layer({
          ...options,
          disableOfflineQueue: true,
          socket: {
            connectTimeout: connectTimeoutMs,
            // Never give up (NodeRedis's default stops on a socket timeout): back off up to retryInterval.
            reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), retryIntervalMs)
          }
        }),
        scope
      ).pipe(Effect.provideService(References.MinimumLogLevel, "Error"))
      // Added after the client's own finalizer, so it runs before it: the client's shutdown is no outage.
      yield* Scope.addFinalizer(scope, Effect.sync(() => {
        closing = true
      }))
      const nodeRedis = Context.get(context, NodeRedisModule.NodeRedis)
      client = nodeRedis.client
      redis = Context.get(context, Redis.Redis)
      const r = redis
      // A reconnect after a drop: the shared state may have changed meanwhile.
      nodeRedis.client.on("ready", () => {
        runFork(Effect.ignore(send("ping", "PING")))
      })
      nodeRedis.client.on("end", () => {
        runFork(markDown("connection", "error", "connection closed"))
      })
      yield* Effect.forkIn(listen(r), scope)
      yield* Effect.ignore(send("ping", "PING"))
    }).pipe(
      Effect.catchCause((cause) => Effect.logWarning("keel: could not set up the Redis client; staying on local state", cause))
    )

    yield* Effect.forkIn(connect, scope)
    // Heartbeat: notices a stalled or restarted Redis coming back even when no call uses it.
    yield* Effect.forkIn(
      Effect.forever(Effect.andThen(Effect.sleep(config.retryInterval), Effect.ignore(send("ping", "PING")))),
      scope
    )

    // Runs first when the scope closes: the client's own shutdown is not an outage.
    yield* Effect.addFinalizer(() => Effect.sync(() => {
      closing = true
    }))

    return {
      config,
      prefix,
      replicaId,
      isAvailable: () => available && client?.isReady === true,
      redis: () => redis,
      guard,
      send,
      publish,
      onMessage: (kind, handler) => Effect.sync(() => void handlers.set(kind, handler)),
      onAvailable: (hook) =>
        Effect.suspend(() => {
          availableHooks.push(hook)
          return available ? Effect.asVoid(Effect.forkIn(Effect.ignoreCause(hook), scope)) : Effect.void
        })
    } satisfies SharedRedisShape
  })

/**
 * The service.
 *
 * @since 0.3.0
 * @category services
 */
export class SharedRedis extends Context.Service<SharedRedis, SharedRedisShape>()("@keel/core/SharedRedis") {
  /** Connects in the background; never fails, never blocks (see the module doc). */
  static readonly layer = (config: RedisConfig): Layer.Layer<SharedRedis> => Layer.effect(SharedRedis, make(config))
}
