/**
 * The breaker against the real demo server (a real child process, real JSON-RPC): the `flaky` tool fails
 * its first calls, the breaker opens and stops sending calls to the server, and once the wait is over the
 * probes succeed and the breaker closes. The breaker's wait runs on its own `TestClock`, so nothing sleeps;
 * the MCP session runs on real time.
 */
import { assert, describe, it } from "@effect/vitest"
import { demoStdio } from "@keel/demo-server"
import { Clock, Effect, Exit, PubSub } from "effect"
import { TestClock } from "effect/testing"
import * as CB from "./CircuitBreaker.ts"
import { McpClient, type McpConnection } from "./McpClient.ts"
import type { ServerConfig } from "./ServerConfig.ts"

const stdio = (): ServerConfig => ({ type: "stdio", ...demoStdio() })

/** How many `flaky` calls the server process actually received. */
const flakyCallsServed = (c: McpConnection) =>
  Effect.map(c.callTool("stats"), (r) => {
    const first = r.content[0]
    const stats = JSON.parse(first?.type === "text" ? first.text : "{}") as { calls: Record<string, number> }
    return stats.calls["flaky"] ?? 0
  })

const config: CB.CircuitBreakerConfigInput = {
  consecutiveFailureThreshold: 3,
  waitDurationInOpen: "10 seconds",
  waitDurationInOpenBackoff: "fixed",
  permittedCallsInHalfOpen: 2,
  successThresholdToClose: 2
}

/** A breaker whose clock is a private TestClock (the session keeps real time). */
const breakerWithTestClock = (server: string, input: CB.CircuitBreakerConfigInput) =>
  Effect.gen(function*() {
    const clock = yield* TestClock.make()
    const breaker = yield* CB.make(server, input).pipe(Effect.provideService(Clock.Clock, clock))
    return { breaker, clock }
  })

describe("CircuitBreaker against the demo server", () => {
  it.live("flaky opens the breaker (protocol errors); recovery closes it", () =>
    Effect.gen(function*() {
      const c = yield* McpClient.connect("demo-cb", stdio())
      const { breaker, clock } = yield* breakerWithTestClock("demo-cb", config)
      const sub = yield* breaker.subscribe
      const flaky = breaker.execute(c.callTool("flaky", { key: "cb", failFirst: 3 }))

      for (let i = 0; i < 3; i++) {
        const error = yield* Effect.flip(flaky)
        assert.strictEqual(error._tag, "McpProtocolError")
      }
      assert.strictEqual(yield* breaker.state, "Open")

      // open: calls fail fast with a typed error and never reach the server
      const rejected = yield* Effect.flip(flaky)
      assert.strictEqual(rejected._tag, "CircuitOpenError")
      if (rejected._tag === "CircuitOpenError") {
        assert.strictEqual(rejected.server, "demo-cb")
        assert.isDefined(rejected.nextProbeAt)
      }
      assert.strictEqual(yield* flakyCallsServed(c), 3)

      // the wait ends with no traffic: half-open; two successful probes close the breaker
      yield* clock.adjust("10 seconds")
      assert.strictEqual(yield* breaker.state, "HalfOpen")
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(flaky)))
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(flaky)))
      assert.strictEqual(yield* breaker.state, "Closed")
      assert.strictEqual(yield* flakyCallsServed(c), 5)

      const transitions = Array.from(yield* PubSub.takeUpTo(sub, 1000))
        .filter((e): e is CB.StateTransition => e._tag === "StateTransition")
        .map((t) => `${t.from}->${t.to}`)
      assert.deepStrictEqual(transitions, ["Closed->Open", "Open->HalfOpen", "HalfOpen->Closed"])
      const stats = yield* breaker.stats
      assert.strictEqual(stats.failedCalls, 3)
      assert.strictEqual(stats.successfulCalls, 2)
      assert.strictEqual(stats.rejectedCalls, 1)
    }).pipe(Effect.scoped))

  it.live("tool isError results do not open the breaker by default; they do with countToolErrors", () =>
    Effect.gen(function*() {
      const c = yield* McpClient.connect("demo-cb-tool", stdio())
      const lenient = (yield* breakerWithTestClock("demo-cb-tool", config)).breaker
      for (let i = 0; i < 5; i++) {
        const error = yield* Effect.flip(lenient.execute(c.callTool("flaky", { key: "t1", failFirst: 5, as: "isError" })))
        assert.strictEqual(error._tag, "McpToolError")
      }
      assert.strictEqual(yield* lenient.state, "Closed")

      const strict = (yield* breakerWithTestClock("demo-cb-tool", { ...config, countToolErrors: true })).breaker
      for (let i = 0; i < 3; i++) {
        yield* Effect.exit(strict.execute(c.callTool("flaky", { key: "t2", failFirst: 5, as: "isError" })))
      }
      assert.strictEqual(yield* strict.state, "Open")
    }).pipe(Effect.scoped))

  it.live("registry: a failing server's breaker opens while another server's keeps serving", () =>
    Effect.gen(function*() {
      const bad = yield* McpClient.connect("demo-bad", stdio())
      const good = yield* McpClient.connect("demo-good", stdio())
      const registry = yield* CB.makeRegistry({ defaults: config })
      for (let i = 0; i < 3; i++) {
        yield* Effect.exit(registry.execute("demo-bad", bad.callTool("flaky", { key: "r", failFirst: 10 })))
      }
      const states = yield* registry.states
      assert.strictEqual(states.get("demo-bad"), "Open")
      const echoed = yield* registry.execute("demo-good", good.callTool("echo", { message: "hi" }))
      assert.isFalse(echoed.isError === true)
      assert.strictEqual((yield* registry.states).get("demo-good"), "Closed")
    }).pipe(Effect.scoped))
})
