/**
 * Breaker state shared across replicas through Redis: when one replica's breaker for a server opens, the
 * others reject calls to it at once, and only one replica probes it.
 *
 * **Why Keel's own breaker with shared transitions, not Effect's `persistence/CircuitBreaker` with
 * `layerStoreRedis`.** Effect's Redis store runs a Lua script to admit every call and another to record
 * every outcome: two Redis round trips on the closed path of every tool call, and a Redis outage on it.
 * Keel's breaker (count and time windows, slow calls, several half-open permits, manual states) keeps
 * counting locally, in its `Ref`, at the same cost as without Redis; only *transitions* are shared:
 *
 * - A replica whose breaker opens by itself (`Closed → Open`) claims the opening with
 *   `SET <prefix>breaker:<server> {owner, until, at} NX PX (until − now + breakerLease)` and publishes it.
 *   The other replicas force their breaker open (`isolate`): calls are rejected with `CircuitOpenError`
 *   and they never probe. If two replicas open at once, `NX` picks one owner; the other follows it.
 * - Only the owner probes when its open wait elapses. A successful probe (`HalfOpen → Closed`) deletes the
 *   record and publishes `closed`: followers `reset` to Closed. A failed probe re-opens the owner's breaker,
 *   which rewrites the record with the new deadline and publishes it.
 * - A follower that hears nothing by `until + breakerLease` (owner gone, or no traffic at the owner) reads
 *   the record; when it is gone (or Redis is unreachable) it resets and runs on its own breaker again.
 * - Each time Redis becomes available (first connect, return after an outage) a replica re-reads every
 *   record (`SCAN`), follows the open ones, drops followings whose record is gone, and claims its own
 *   breakers that opened while Redis was away.
 * - With Redis down, every breaker is local, exactly as without `keel.redis` (fail open).
 *
 * Manual states (`isolate`, `disable`, `metricsOnly`, `reset`) stay local: they are not shared.
 * `keel_breaker_propagation_seconds` records, at each follower, the delay from the owner's transition to
 * the follower applying it.
 *
 * @since 0.3.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type CircuitBreakerEvent, CircuitBreakerRegistry, type StateTransition } from "./CircuitBreaker.ts"
import { type BusMessage, SharedRedis, type SharedRedisShape } from "./SharedRedis.ts"

/**
 * `keel.breaker.propagation`: seconds from a breaker transition at its owner to another replica applying
 * it, by `server` and `to` (`open`, `closed`).
 *
 * @since 0.3.0
 * @category metrics
 */
export const propagationDelay = Metric.histogram("keel_breaker_propagation_seconds", {
  description: "Delay from a breaker transition at the replica that owns it to another replica applying it (seconds)",
  boundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5]
})

/** The shared record of an opened breaker. */
interface OpenRecord {
  readonly owner: string
  /** Epoch ms the owner may probe. */
  readonly until: number
  /** Epoch ms of the owner's transition. */
  readonly at: number
}

interface Following {
  readonly record: OpenRecord
  readonly watchdog: Fiber.Fiber<void>
}

/**
 * What a replica knows about the breakers it follows (for tests and status pages).
 *
 * @since 0.3.0
 * @category models
 */
export interface SharedBreakersShape {
  /** Servers whose breaker this replica holds open because another replica owns the opening. */
  readonly following: () => ReadonlyMap<string, { readonly owner: string; readonly until: number }>
}

const parseRecord = (text: unknown): OpenRecord | undefined => {
  if (typeof text !== "string") return undefined
  try {
    const r = JSON.parse(text) as OpenRecord
    return typeof r.owner === "string" && typeof r.until === "number" && typeof r.at === "number" ? r : undefined
  } catch {
    return undefined
  }
}

/**
 * Shares the transitions of every breaker of the registry through `shared`, for the scope's lifetime.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (shared: SharedRedisShape): Effect.Effect<SharedBreakersShape, never, Scope.Scope | CircuitBreakerRegistry> =>
  Effect.gen(function*() {
    const registry = yield* CircuitBreakerRegistry
    const scope = yield* Effect.scope
    const leaseMs = Duration.toMillis(shared.config.breakerLease)
    const keyOf = (server: string) => `${shared.prefix}breaker:${server}`
    const following = new Map<string, Following>()

    const observe = (server: string, to: "open" | "closed", at: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Metric.update(Metric.withAttributes(propagationDelay, { server, to }), Math.max(0, now - at) / 1000))

    const unfollow = (server: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        const f = following.get(server)
        if (f === undefined) return Effect.void
        following.delete(server)
        return Effect.andThen(Fiber.interrupt(f.watchdog), Effect.flatMap(registry.get(server), (b) => b.reset))
      })

    // Past `until + lease` without news: keep following a live record, else run on our own breaker again.
    const watchdog = (server: string, record: OpenRecord): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sleep(Duration.millis(Math.max(0, record.until + leaseMs - now)))).pipe(
        Effect.andThen(Effect.option(shared.send<string | null>("breaker.read", "GET", keyOf(server)))),
        Effect.flatMap((read) => {
          const current = Option.isSome(read) ? parseRecord(read.value) : undefined
          return Effect.suspend(() => {
            if (current !== undefined && current.owner !== shared.replicaId && (current.until !== record.until || current.owner !== record.owner)) {
              following.delete(server)
              return follow(server, current)
            }
            const f = following.get(server)
            if (f === undefined || f.record !== record) return Effect.void
            following.delete(server)
            return Effect.flatMap(registry.get(server), (b) => b.reset)
          })
        })
      )

    const follow = (server: string, record: OpenRecord): Effect.Effect<void> =>
      Effect.uninterruptible(Effect.gen(function*() {
        const previous = following.get(server)
        if (previous !== undefined) {
          if (previous.record.until >= record.until && previous.record.owner === record.owner) return
          yield* Fiber.interrupt(previous.watchdog)
        }
        const breaker = yield* registry.get(server)
        // Always: the manager may have replaced the breaker (registry.add) since we last isolated it.
        yield* breaker.isolate
        const fiber = yield* Effect.forkIn(Effect.interruptible(watchdog(server, record)), scope)
        following.set(server, { record, watchdog: fiber })
      }))

    const claim = (server: string, t: Pick<StateTransition, "from" | "at">): Effect.Effect<void> =>
      Effect.gen(function*() {
        const breaker = yield* registry.get(server)
        const status = yield* breaker.status
        if (status.state !== "Open" || !Number.isFinite(status.deadline)) return
        const now = yield* Clock.currentTimeMillis
        const record: OpenRecord = { owner: shared.replicaId, until: status.deadline, at: t.at }
        const ttl = String(Math.max(1, Math.ceil(status.deadline - now + leaseMs)))
        const json = JSON.stringify(record)
        if (t.from === "Closed") {
          const set = yield* shared.send<string | null>("breaker.claim", "SET", keyOf(server), json, "NX", "PX", ttl)
          if (set !== "OK") {
            // Another replica owns this opening: follow it (our breaker stops probing).
            const current = parseRecord(yield* shared.send<string | null>("breaker.read", "GET", keyOf(server)))
            if (current !== undefined && current.owner !== shared.replicaId) return yield* follow(server, current)
            if (current === undefined) yield* shared.send("breaker.claim", "SET", keyOf(server), json, "PX", ttl)
          }
        } else {
          yield* shared.send("breaker.claim", "SET", keyOf(server), json, "PX", ttl)
        }
        yield* shared.publish("breaker", { server, state: "open", until: record.until, at: record.at })
      }).pipe(Effect.ignore)

    const onLocal = (event: CircuitBreakerEvent): Effect.Effect<void> => {
      if (event._tag !== "StateTransition" || event.reason === "Manual" || following.has(event.server)) return Effect.void
      if (event.to === "Open") return claim(event.server, event)
      if (event.to === "Closed" && event.from === "HalfOpen") {
        return Effect.ignore(
          Effect.andThen(
            shared.send("breaker.close", "DEL", keyOf(event.server)),
            shared.publish("breaker", { server: event.server, state: "closed", at: event.at })
          )
        )
      }
      return Effect.void
    }

    const onRemote = (message: BusMessage): Effect.Effect<void> => {
      const server = message.server
      const at = message.at
      if (typeof server !== "string" || typeof at !== "number") return Effect.void
      if (message.state === "open" && typeof message.until === "number") {
        return Effect.andThen(
          follow(server, { owner: message.origin, until: message.until, at }),
          observe(server, "open", at)
        )
      }
      if (message.state === "closed") {
        return Effect.suspend(() =>
          following.has(server) ? Effect.andThen(unfollow(server), observe(server, "closed", at)) : Effect.void
        )
      }
      return Effect.void
    }

    // Redis (re)available: re-read every record, and claim what opened here while it was away.
    const resync = Effect.gen(function*() {
      const seen = new Set<string>()
      let cursor = "0"
      do {
        const [next, keys] = yield* shared.send<[string, Array<string>]>(
          "breaker.resync", "SCAN", cursor, "MATCH", `${shared.prefix}breaker:*`, "COUNT", "200"
        )
        cursor = next
        for (const key of keys) {
          const server = key.slice(`${shared.prefix}breaker:`.length)
          const record = parseRecord(yield* shared.send<string | null>("breaker.read", "GET", key))
          if (record === undefined) continue
          seen.add(server)
          if (record.owner !== shared.replicaId) yield* follow(server, record)
        }
      } while (cursor !== "0")
      for (const server of [...following.keys()]) if (!seen.has(server)) yield* unfollow(server)
      const states = yield* registry.states
      for (const [server, state] of states) {
        if (state === "Open" && !following.has(server) && !seen.has(server)) {
          yield* claim(server, { from: "Closed", at: yield* Clock.currentTimeMillis })
        }
      }
    }).pipe(Effect.ignore)

    // Transitions only: a plain `subscribe` turns the breakers' per-call events on (a few µs per call for
    // events nobody here reads).
    const subscription = yield* registry.subscribeTransitions
    yield* Effect.forkIn(Stream.runForEach(Stream.fromSubscription(subscription), onLocal), scope)
    yield* shared.onMessage("breaker", onRemote)
    yield* shared.onAvailable(resync)

    return {
      following: () => new Map([...following].map(([server, f]) => [server, { owner: f.record.owner, until: f.record.until }]))
    }
  })

/**
 * Shares the `CircuitBreakerRegistry`'s transitions when a {@link SharedRedis} is in context; without one,
 * nothing is shared (breakers are in-process, as without `keel.redis`).
 *
 * @since 0.3.0
 * @category layers
 */
export const layer: Layer.Layer<never, never, CircuitBreakerRegistry> = Layer.effectDiscard(
  Effect.flatMap(Effect.serviceOption(SharedRedis), (shared) => Option.isSome(shared) ? make(shared.value) : Effect.void)
)
