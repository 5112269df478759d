import { describe, expect, it } from "@effect/vitest"
import { Effect, PubSub } from "effect"
import { makeRegistry } from "./CircuitBreaker.ts"

describe("CircuitBreakerRegistry.subscribeTransitions (what SharedBreakers listens to)", () => {
  it.effect("gets transitions, and no per-call events unless another subscriber turned them on", () =>
    Effect.gen(function*() {
      const registry = yield* makeRegistry({ defaults: { consecutiveFailureThreshold: 1, waitDurationInOpen: 60_000 } })
      const transitions = yield* registry.subscribeTransitions
      yield* registry.execute("s", Effect.void)
      yield* Effect.exit(registry.execute("s", Effect.fail("boom")))
      const first = yield* PubSub.take(transitions)
      expect(first).toMatchObject({ _tag: "StateTransition", server: "s", from: "Closed", to: "Open" })
      expect(yield* PubSub.remaining(transitions)).toBe(0)

      // With a full subscriber, per-call events flow (and reach this subscription too).
      const all = yield* registry.subscribe
      yield* registry.get("s").pipe(Effect.flatMap((b) => b.reset))
      yield* registry.execute("s", Effect.void)
      const seen = yield* PubSub.takeAll(all)
      expect(Array.from(seen).some((e) => e._tag === "CallRecorded")).toBe(true)
    }).pipe(Effect.scoped))
})
