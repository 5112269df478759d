/**
 * Per-server limits: a rate limit shared across replicas (`keel.rateLimit`) and a local bulkhead
 * (`keel.maxConcurrentCalls`).
 *
 * **Rate limits delegate to Effect's `persistence/RateLimiter`.** Its fixed-window and token-bucket
 * algorithms, its `layerStoreMemory` and its Redis store (one `EVALSHA` per call: one round trip, atomic
 * in Redis, so N replicas share one quota) are exactly what a server quota needs; Keel adds the policy
 * around it:
 *
 * - **Shared when Redis is up, local when it is not.** With a {@link SharedRedis} the limiter uses Effect's
 *   Redis store (keys `<keyPrefix>ratelimit:<server>`), through `SharedRedis.guard`: bounded by
 *   `commandTimeout`, skipped at once while Redis is known down. Then, and without `keel.redis`, the
 *   in-memory store enforces the limit per process (so with R replicas cut off from Redis, up to R × the
 *   limit; the metric's `store` label shows which store decided).
 * - `onExceeded: "fail"`: a call over the limit fails with {@link RateLimitedError} carrying `retryAfter`,
 *   consuming nothing. `"wait"`: it waits `retryAfter` and asks again, as long as that ends before the
 *   call's deadline; otherwise it fails with `RateLimitedError` at once (never a wait that cannot succeed).
 * - **Bulkhead**: at most `maxConcurrentCalls` calls in flight per server in this process; a call waits
 *   for a slot until its deadline, then fails with {@link BulkheadTimeoutError}. The slot is taken before
 *   the rate-limit token, so a call that times out in the queue spends no quota.
 *
 * `keel_rate_limit_decisions_total{server, decision=allowed|waited|rejected, store=redis|local}` counts
 * every decision, `keel_bulkhead_timeouts_total{server}` every call that found no slot in time.
 *
 * `McpClientManager` imports this module for the service's tag; Effect's rate limiter, Redis service and
 * {@link SharedRedis} are loaded when the service is built, so `import "@keel/core"` does not load them
 * (`bench/import.bench.ts`).
 *
 * @since 0.3.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type * as RateLimiter from "effect/persistence/RateLimiter"
import type * as Redis from "effect/persistence/Redis"
import type { RateLimitConfig, ServerLimitsConfig } from "./ScaleOutConfig.ts"
import type { SharedRedisShape } from "./SharedRedis.ts"

/**
 * A call was over its server's rate limit (`keel.rateLimit`). `retryAfter` is when a token is next free.
 *
 * @since 0.3.0
 * @category errors
 */
export class RateLimitedError extends Schema.TaggedError<RateLimitedError>()("RateLimitedError", {
  server: Schema.String,
  limit: Schema.Number,
  retryAfter: Schema.Duration,
  message: Schema.String
}) {}

/**
 * A call found no free slot in its server's bulkhead (`keel.maxConcurrentCalls`) before its deadline.
 *
 * @since 0.3.0
 * @category errors
 */
export class BulkheadTimeoutError extends Schema.TaggedError<BulkheadTimeoutError>()("BulkheadTimeoutError", {
  server: Schema.String,
  maxConcurrentCalls: Schema.Number,
  waitedMs: Schema.Number,
  message: Schema.String
}) {}

/**
 * @since 0.3.0
 * @category metrics
 */
export const rateLimitDecisions = Metric.counter("keel_rate_limit_decisions", {
  description: "Rate-limit decisions by server, decision (allowed, waited, rejected) and store (redis, local)",
  incremental: true
})

/**
 * @since 0.3.0
 * @category metrics
 */
export const bulkheadTimeouts = Metric.counter("keel_bulkhead_timeouts", {
  description: "Calls that found no free slot in the server's bulkhead (maxConcurrentCalls) before their deadline",
  incremental: true
})

/**
 * @since 0.3.0
 * @category models
 */
export interface RunOptions {
  /** The call's whole budget (default 30 s): waits in the bulkhead and for the rate limit end with it. */
  readonly timeout?: Duration.Input | undefined
}

/**
 * @since 0.3.0
 * @category models
 */
export interface ServerLimitsShape {
  /** Runs `effect` within `server`'s bulkhead and rate limit (nothing when it has neither). */
  readonly run: <A, E, R>(
    server: string,
    effect: Effect.Effect<A, E, R>,
    options?: RunOptions
  ) => Effect.Effect<A, E | RateLimitedError | BulkheadTimeoutError, R>
  /**
   * As `run`, for an effect made once the limits let it through, with what is left of the budget (so a call
   * that waited in the bulkhead or for the rate limit still ends by its deadline).
   */
  readonly runWithin: <A, E, R>(
    server: string,
    budget: Duration.Input,
    f: (remaining: Duration.Duration) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | RateLimitedError | BulkheadTimeoutError, R>
  /** Whether `server` has a rate limit or a bulkhead. */
  readonly limited: (server: string) => boolean
  /** Sets (or replaces) a server's limits. */
  readonly set: (server: string, limits: ServerLimitsConfig) => Effect.Effect<void>
}

interface Entry {
  readonly rateLimit: RateLimitConfig | undefined
  readonly semaphore: Semaphore.Semaphore | undefined
  readonly max: number
}

type Decision = Result.Result<RateLimiter.ConsumeResult, RateLimiter.RateLimitExceeded>

const consumeWith = (limiter: RateLimiter.RateLimiter, server: string, rl: RateLimitConfig): Effect.Effect<Decision, RateLimiter.RateLimiterError> =>
  limiter.consume({ key: server, limit: rl.limit, window: rl.window, algorithm: rl.algorithm, onExceeded: "fail" }).pipe(
    Effect.map((r): Decision => Result.succeed(r)),
    Effect.catchIf(
      (e): e is RateLimiter.RateLimiterError => e.reason._tag === "RateLimitExceeded",
      (e) => Effect.succeed<Decision>(Result.fail(e.reason as RateLimiter.RateLimitExceeded))
    )
  )

/**
 * Makes the service from per-server limits; `shared` (optional) makes rate limits cross-replica.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (
  servers: ReadonlyMap<string, ServerLimitsConfig>,
  shared: SharedRedisShape | undefined
): Effect.Effect<ServerLimitsShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    // Loaded here, not at import: a program that sets no limits (McpClientManager only looks this service
    // up) never loads Effect's rate limiter, its stores or Redis.
    const RateLimiter = yield* Effect.promise(() => import("effect/persistence/RateLimiter"))
    const local = yield* RateLimiter.make.pipe(Effect.provide(RateLimiter.layerStoreMemory))
    const Redis = shared === undefined ? undefined : yield* Effect.promise(() => import("effect/persistence/Redis"))
    let remote: { readonly redis: Redis.Redis["Service"]; readonly limiter: RateLimiter.RateLimiter } | undefined
    const remoteLimiter = (r: Redis.Redis["Service"]): Effect.Effect<RateLimiter.RateLimiter> => {
      if (remote !== undefined && remote.redis === r) return Effect.succeed(remote.limiter)
      return RateLimiter.makeStoreRedis({ prefix: `${shared!.prefix}ratelimit:` }).pipe(
        Effect.flatMap((store) => RateLimiter.make.pipe(Effect.provideService(RateLimiter.RateLimiterStore, store))),
        Effect.provideService(Redis!.Redis, r),
        Effect.tap((limiter) => Effect.sync(() => {
          remote = { redis: r, limiter }
        }))
      )
    }

    const entries = new Map<string, Entry>()
    const entryOf = (limits: ServerLimitsConfig): Effect.Effect<Entry> =>
      Effect.map(
        limits.maxConcurrentCalls === undefined ? Effect.succeed(undefined) : Semaphore.make(limits.maxConcurrentCalls),
        (semaphore) => ({ rateLimit: limits.rateLimit, semaphore, max: limits.maxConcurrentCalls ?? Infinity })
      )
    for (const [server, limits] of servers) entries.set(server, yield* entryOf(limits))

    const decide = (server: string, rl: RateLimitConfig): Effect.Effect<readonly [Decision, "redis" | "local"]> => {
      const localDecision = Effect.map(Effect.orDie(consumeWith(local, server, rl)), (d) => [d, "local"] as const)
      if (shared === undefined) return localDecision
      return shared.guard("rateLimit", (r) => Effect.flatMap(remoteLimiter(r), (limiter) => consumeWith(limiter, server, rl))).pipe(
        Effect.map((d) => [d, "redis"] as const),
        Effect.catch(() => localDecision)
      )
    }

    const count = (server: string, decision: "allowed" | "waited" | "rejected", store: string) =>
      Metric.update(Metric.withAttributes(rateLimitDecisions, { server, decision, store }), 1)

    const limit = (server: string, rl: RateLimitConfig, deadline: number): Effect.Effect<void, RateLimitedError> => {
      const attempt = (waited: boolean): Effect.Effect<void, RateLimitedError> =>
        Effect.flatMap(decide(server, rl), ([decision, store]) => {
          if (Result.isSuccess(decision)) return count(server, waited ? "waited" : "allowed", store)
          const retryAfter = decision.failure.retryAfter
          return Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const retryMs = Math.max(1, Duration.toMillis(retryAfter))
            if (rl.onExceeded === "wait" && now + retryMs < deadline) {
              return Effect.andThen(Effect.sleep(Duration.millis(retryMs)), attempt(true))
            }
            return Effect.andThen(
              count(server, "rejected", store),
              Effect.fail(new RateLimitedError({
                server,
                limit: rl.limit,
                retryAfter,
                message: `${server}: over its rate limit of ${rl.limit} per ${Duration.format(rl.window)}; retry after ${Math.ceil(retryMs)} ms`
              }))
            )
          })
        })
      return attempt(false)
    }

    const runWithin = <A, E, R>(
      server: string,
      budgetInput: Duration.Input,
      f: (remaining: Duration.Duration) => Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | RateLimitedError | BulkheadTimeoutError, R> => {
      const entry = entries.get(server)
      const budget = Duration.fromInputUnsafe(budgetInput)
      if (entry === undefined || (entry.rateLimit === undefined && entry.semaphore === undefined)) return f(budget)
      return Effect.flatMap(Clock.currentTimeMillis, (start) => {
        const deadline = start + Duration.toMillis(budget)
        const effect = Effect.flatMap(Clock.currentTimeMillis, (now) => f(Duration.millis(Math.max(1, deadline - now))))
        const limited = entry.rateLimit === undefined ? effect : Effect.andThen(limit(server, entry.rateLimit, deadline), effect)
        const semaphore = entry.semaphore
        if (semaphore === undefined) return limited
        return Effect.scoped(
          Effect.andThen(
            Semaphore.takeScoped(semaphore, 1).pipe(
              Effect.timeoutOrElse({
                duration: Duration.millis(Math.max(0, deadline - start)),
                orElse: () =>
                  Effect.andThen(
                    Metric.update(Metric.withAttributes(bulkheadTimeouts, { server }), 1),
                    Effect.fail(new BulkheadTimeoutError({
                      server,
                      maxConcurrentCalls: entry.max,
                      waitedMs: deadline - start,
                      message: `${server}: no free slot among its ${entry.max} concurrent calls within the call's ${deadline - start} ms`
                    }))
                  )
              })
            ),
            limited
          )
        )
      })
    }

    const run = <A, E, R>(
      server: string,
      effect: Effect.Effect<A, E, R>,
      options?: RunOptions
    ): Effect.Effect<A, E | RateLimitedError | BulkheadTimeoutError, R> =>
      runWithin(server, options?.timeout ?? "30 seconds", () => effect)

    return {
      run,
      runWithin,
      limited: (server) => {
        const entry = entries.get(server)
        return entry !== undefined && (entry.rateLimit !== undefined || entry.semaphore !== undefined)
      },
      set: (server, limits) => Effect.map(entryOf(limits), (entry) => void entries.set(server, entry))
    } satisfies ServerLimitsShape
  })

/**
 * The service.
 *
 * @since 0.3.0
 * @category services
 */
export class ServerLimits extends Context.Service<ServerLimits, ServerLimitsShape>()("@keel/core/ServerLimits") {
  /** Limits per server; cross-replica when a {@link SharedRedis} is in context. */
  static readonly layer = (servers: ReadonlyMap<string, ServerLimitsConfig>): Layer.Layer<ServerLimits> =>
    Layer.effect(
      ServerLimits,
      Effect.flatMap(
        Effect.promise(() => import("./SharedRedis.ts")),
        ({ SharedRedis }) => Effect.flatMap(Effect.serviceOption(SharedRedis), (shared) => make(servers, Option.getOrUndefined(shared)))
      )
    )
}
