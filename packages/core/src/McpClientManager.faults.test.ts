/**
 * The fault suite: the manager with a healthy demo server beside a misbehaving one, tried as a hostile
 * user would, against real processes (the demo server, a hostile raw-JSON-RPC fixture server in
 * `test/fixtures/hostile-server.mjs`, refused loopback ports). One `describe` per numbered case of the issue
 * "Faults and bad input". Case 9 (secrets masked in stderr tails) lives in `McpClient.faults.test.ts`.
 *
 * Deadlines: a call given a timeout T must end (answer or typed error) by T + {@link SLACK_MS}. The slack
 * covers the event loop and timer granularity of a loaded 2-core machine; it is measured in the chaos case.
 */
import { assert, describe, it } from "@effect/vitest"
import { demoStdio } from "@keel/demo-server"
import { Duration, Effect, Exit, Fiber, Layer } from "effect"
import { createServer } from "node:net"
import { fileURLToPath } from "node:url"
import type { CircuitOpenError, StateTransition } from "./CircuitBreaker.ts"
import { CircuitBreakerRegistry } from "./CircuitBreaker.ts"
import { McpClientManager, type Manager } from "./McpClientManager.ts"
import { McpConfig } from "./McpConfig.ts"
import * as SessionHooks from "./SessionHooks.ts"
import { demoHttpServer, eventually, pidsWithMarker, uniqueMarker } from "./testing/processes.ts"
import { ToolCache } from "./ToolCache.ts"

/** How far past its deadline a call may end (event loop and timers on a loaded 2-core machine). */
const SLACK_MS = 250

const hostileEntry = fileURLToPath(new URL("../test/fixtures/hostile-server.mjs", import.meta.url))

/**
 * The demo server over stdio, pinned to MCP 2025-11-25 where a test counts breaker outcomes exactly: on
 * 2026-07-28 the demo server's list-change publication currently makes every call refetch `tools/list`,
 * which records extra successes between failures (reported to the protocol work).
 */
const demo = (marker: string, pinned = true) => {
  const d = demoStdio({ name: marker })
  return { type: "stdio", command: d.command, args: pinned ? [...d.args, "--protocol-version", "2025-11-25"] : d.args }
}

const hostile = (...flags: Array<string>) => ({ type: "stdio", command: process.execPath, args: [hostileEntry, ...flags] })

/** The manager's default graph over `json`, with a `connectTimeout` for every session. */
const managerLayer = (json: unknown, options: { readonly connectTimeoutMs?: number } = {}) => {
  const hooks = Layer.effect(
    SessionHooks.SessionHooks,
    Effect.map(Effect.service(ToolCache), (cache) =>
      SessionHooks.combine(SessionHooks.fromToolCache(cache), {
        connectOptions: () => options.connectTimeoutMs !== undefined ? { settings: { connectTimeout: Duration.millis(options.connectTimeoutMs) } } : {},
        onSession: () => Effect.void
      }))
  )
  return McpClientManager.layer().pipe(
    Layer.provide(Layer.mergeAll(
      McpClientManager.layerConnectionPool().pipe(Layer.provide(hooks)),
      CircuitBreakerRegistry.layer()
    )),
    Layer.provide(McpClientManager.layerToolCache),
    Layer.provide(McpConfig.layerConfig(json))
  )
}

/** Runs `self`, returning its exit and how long it took (real time, ms). */
const timed = <A, E>(self: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const start = performance.now()
    const exit = yield* Effect.exit(self)
    return { exit, ms: performance.now() - start }
  })

const tagOf = (exit: Exit.Exit<unknown, unknown>): string =>
  Exit.isSuccess(exit) ? "Success" : String((exit.cause.reasons[0] as { error?: { _tag?: string } } | undefined)?.error?._tag ?? "Defect")

/** A loopback port nothing listens on (bound, then closed). */
const refusedPort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const s = createServer()
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
)

/** Records the breaker's transitions from now on. */
const transitionsOf = (m: Manager, server: string) =>
  Effect.gen(function*() {
    const seen: Array<StateTransition> = []
    const breaker = yield* m.breaker(server)
    yield* breaker.onStateChange<never>((t) => {
      seen.push(t)
    })
    return seen
  })

describe("faults 1: connects end within connectTimeout; a misbehaving server never delays a healthy one", () => {
  it.live("refused legacy-SSE URLs fail at once with McpConnectError; the healthy stdio server answers meanwhile", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const refused = ["sse0", "sse1", "sse2", "sse3"]
      // Calls to every refused server, several each, at the same time as the healthy calls.
      const bad = yield* Effect.forkChild(Effect.forEach(
        refused.flatMap((s) => [s, s, s]),
        (s) => timed(m.callTool(s, "echo", { message: "x" })),
        { concurrency: "unbounded" }
      ))
      const healthy = yield* timed(m.callTool("demo", "echo", { message: "ok" }, { timeout: "10 seconds" }))
      assert.strictEqual(tagOf(healthy.exit), "Success")
      const results = yield* Fiber.join(bad)
      for (const r of results) {
        // Never a PoolTimeoutError after 30 s: a typed connect failure (or the open breaker) within the bound.
        assert.include(["McpConnectError", "CircuitOpenError"], tagOf(r.exit))
        assert.isBelow(r.ms, 2_000 + SLACK_MS)
      }
      const healthyAgain = yield* timed(m.callTool("demo", "echo", { message: "ok" }, { timeout: "2 seconds" }))
      assert.strictEqual(tagOf(healthyAgain.exit), "Success")
    }).pipe(Effect.provide(Layer.unwrap(Effect.map(
      Effect.all([refusedPort, refusedPort, refusedPort, refusedPort]),
      (ports) =>
        managerLayer({
          mcpServers: {
            demo: demo(uniqueMarker("f1")),
            ...Object.fromEntries(ports.map((p, i) => [`sse${i}`, { type: "sse", url: `http://127.0.0.1:${p}/sse` }]))
          }
        }, { connectTimeoutMs: 2_000 })
    )))), 60_000)

  // A connect holds a global `maxConcurrentConnects` slot for at most `connectSlotHold` (300 ms here), so four
  // servers hung in `initialize` (bounded by their 1.5 s connectTimeout) cannot keep the healthy server from
  // connecting. Before the hold was bounded: 2.1 s for the healthy call, against 1.5 s.
  it.live("servers that never answer initialize fail within connectTimeout, and do not hold the healthy server's connects", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const hung = yield* Effect.forkChild(Effect.forEach(
        ["hung0", "hung1", "hung2", "hung3"],
        (s) => timed(m.callTool(s, "echo", { message: "x" }, { timeout: "20 seconds" })),
        { concurrency: "unbounded" }
      ))
      // The hung servers' connects are under way (they hold the global connect slots if they can).
      yield* Effect.sleep("300 millis")
      const healthy = yield* timed(m.callTool("demo", "echo", { message: "ok" }, { timeout: "20 seconds" }))
      assert.strictEqual(tagOf(healthy.exit), "Success")
      const results = yield* Fiber.join(hung)
      for (const r of results) {
        assert.include(["McpConnectError", "CircuitOpenError"], tagOf(r.exit))
        // Each connect is bounded by connectTimeout (1.5 s); the manager retries a failed connect 3 times.
        assert.isBelow(r.ms, 4 * 1_500 + 4 * 200 + SLACK_MS)
      }
      // The measure of starvation: a spawn + initialize of the demo server takes well under 1.5 s here; a
      // healthy connect queued behind four hung ones waits for their connectTimeout.
      assert.isBelow(healthy.ms, 1_500, `healthy call took ${Math.round(healthy.ms)} ms beside four hung servers`)
    }).pipe(Effect.provide(managerLayer({
      mcpServers: {
        demo: demo(uniqueMarker("f1h")),
        hung0: hostile("--hang"),
        hung1: hostile("--hang"),
        hung2: hostile("--hang"),
        hung3: hostile("--hang")
      },
      keel: { defaults: { pool: { connectSlotHold: 300 } } }
    }, { connectTimeoutMs: 1_500 }))), 60_000)

  it.live("a legacy-SSE server killed and restarted on the same port is reconnected, like Streamable HTTP", () =>
    Effect.gen(function*() {
      const first = yield* Effect.acquireRelease(Effect.promise(() => import("@keel/demo-server").then((d) => d.spawnDemoHttp())), (s) => Effect.promise(() => s.stop()))
      const port = Number(new URL(first.url).port)
      const layer = managerLayer({ mcpServers: { sse: { type: "sse", url: first.sseUrl }, http: { type: "http", url: first.url } } }, { connectTimeoutMs: 2_000 })
      yield* Effect.gen(function*() {
        const m = yield* McpClientManager
        assert.strictEqual(tagOf((yield* timed(m.callTool("sse", "echo", { message: "a" }))).exit), "Success")
        assert.strictEqual(tagOf((yield* timed(m.callTool("http", "echo", { message: "a" }))).exit), "Success")
        yield* Effect.promise(() => first.stop())
        yield* Effect.acquireRelease(
          Effect.promise(() => import("@keel/demo-server").then((d) => d.spawnDemoHttp({ port }))),
          (s) => Effect.promise(() => s.stop())
        )
        const recovered = (server: string) =>
          Effect.gen(function*() {
            const start = performance.now()
            while (performance.now() - start < 20_000) {
              const r = yield* timed(m.callTool(server, "echo", { message: "b" }, { timeout: "2 seconds" }))
              if (Exit.isSuccess(r.exit)) return performance.now() - start
              yield* Effect.sleep("200 millis")
            }
            return Infinity
          })
        const [sse, http] = yield* Effect.all([recovered("sse"), recovered("http")], { concurrency: 2 })
        // Both transports recover within the breaker's first wait and a probe (10 s default + slack).
        assert.isBelow(http, 15_000, `http recovered after ${Math.round(http)} ms`)
        assert.isBelow(sse, 15_000, `sse recovered after ${Math.round(sse)} ms`)
      }).pipe(Effect.provide(layer))
    }), 90_000)
})

const marker = uniqueMarker("chaos")

describe("faults 2: one crash is one failure", () => {
  it.live("killing the only child under 32-concurrent load: >= 95 % of the next 1,000 calls succeed, the breaker stays closed, no call outlives its deadline", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const transitions = yield* transitionsOf(m, "demo")
      const TIMEOUT_MS = 2_000
      yield* m.callTool("demo", "echo", { message: "warm" })
      const [pid] = pidsWithMarker(marker)
      assert.isDefined(pid)
      let started = 0
      let killedAt = -1
      const after: Array<{ readonly tag: string; readonly ms: number }> = []
      const before: Array<{ readonly tag: string; readonly ms: number; readonly inFlightAtKill: boolean }> = []
      let overshoot = 0
      const worker = Effect.gen(function*() {
        while (after.length < 1_000) {
          const index = started++
          const startedAfterKill = killedAt >= 0
          const r = yield* timed(m.callTool("demo", "echo", { message: `m${index}` }, { timeout: TIMEOUT_MS }))
          overshoot = Math.max(overshoot, r.ms - TIMEOUT_MS)
          if (startedAfterKill) after.push({ tag: tagOf(r.exit), ms: r.ms })
          else before.push({ tag: tagOf(r.exit), ms: r.ms, inFlightAtKill: killedAt >= 0 })
        }
      })
      const killer = Effect.gen(function*() {
        yield* eventually(() => started >= 300, 30_000, "300 calls under way")
        process.kill(pid!, "SIGKILL")
        killedAt = started
      })
      const killing = yield* Effect.forkChild(killer)
      yield* Effect.forEach(Array.from({ length: 32 }, (_, i) => i), () => worker, { concurrency: "unbounded", discard: true })
      yield* Fiber.join(killing)
      const next = after.slice(0, 1_000)
      const ok = next.filter((r) => r.tag === "Success").length
      const tags = [...new Set(next.map((r) => r.tag))]
      const inFlight = before.filter((r) => r.inFlightAtKill)
      console.log(
        `chaos: ${ok}/1000 ok after the kill (${tags.join(", ")}); ${inFlight.filter((r) => r.tag === "Success").length}/${inFlight.length} in-flight ` +
          `at the kill succeeded (read-only retry); max overshoot of the ${TIMEOUT_MS} ms deadline: ${Math.max(0, Math.round(overshoot))} ms`
      )
      assert.isAtLeast(ok, 950)
      assert.deepStrictEqual(transitions.map((t) => t.to), [], "the breaker never left Closed")
      assert.strictEqual((yield* m.status("demo")).breaker, "Closed")
      assert.isAtMost(overshoot, SLACK_MS)
      // The replacement is a new child.
      assert.notInclude(pidsWithMarker(marker), pid)
      assert.strictEqual(pidsWithMarker(marker).length, 1)
    }).pipe(Effect.provide(managerLayer({ mcpServers: { demo: demo(marker) } }))), 120_000)
})
describe("faults 3: caller mistakes never count and are never the server's last error", () => {
  it.live("circular and BigInt arguments, non-objects with skipValidation, and -32602 answers", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const circular: Record<string, unknown> = { message: "x" }
      circular.self = circular
      for (let i = 0; i < 5; i++) {
        const c = yield* Effect.flip(m.callTool("demo", "echo", circular, { skipValidation: true }))
        assert.strictEqual(c._tag, "InvalidArgumentsError")
        if (c._tag === "InvalidArgumentsError") {
          assert.strictEqual(c.path, "/self")
          assert.match(c.message, /circular/)
        }
        const big = yield* Effect.flip(m.callTool("demo", "echo", { message: "x", n: 1n } as never, { skipValidation: true }))
        assert.strictEqual(big._tag, "InvalidArgumentsError")
        if (big._tag === "InvalidArgumentsError") assert.strictEqual(big.path, "/n")
        const validatedBig = yield* Effect.flip(m.callTool("demo", "add", { a: 1n, b: 2 } as never))
        assert.strictEqual(validatedBig._tag, "InvalidArgumentsError")
        for (const args of [[1, 2], "text", 42, null]) {
          const e = yield* Effect.flip(m.callTool("demo", "echo", args as never, { skipValidation: true }))
          assert.strictEqual(e._tag, "InvalidArgumentsError")
          if (e._tag === "InvalidArgumentsError") assert.strictEqual(e.path, "/")
        }
        // The server refuses the arguments itself: a -32602 answer.
        const refused = yield* Effect.flip(m.callTool("demo", "fail", { kind: "protocol", code: -32602, message: "bad params" }))
        assert.strictEqual(refused._tag, "McpProtocolError")
      }
      const status = yield* m.status("demo")
      assert.strictEqual(status.breaker, "Closed")
      assert.isUndefined(status.lastError, JSON.stringify(status.lastError))
      const stats = yield* (yield* m.breaker("demo")).stats
      assert.strictEqual(stats.failedCalls, 0)
      // Nothing unserialisable reached the server: it saw only the five -32602 calls (and the list).
      const served = yield* m.callTool("demo", "stats")
      const calls = JSON.parse(served.content[0]?.type === "text" ? served.content[0].text : "{}").calls as Record<string, number>
      assert.strictEqual(calls.echo ?? 0, 0)
      assert.strictEqual(calls.add ?? 0, 0)
      assert.strictEqual(calls.fail, 5)
    }).pipe(Effect.provide(managerLayer({
      mcpServers: { demo: { ...demo(uniqueMarker("f3")), keel: { breaker: { consecutiveFailureThreshold: 1 } } } }
    }))), 60_000)
})

describe("faults 4: a call's timeout bounds the caller's wait", () => {
  it.live("with the pool busy, a 500 ms call ends in about 500 ms with McpTimeoutError that does not count", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      yield* m.callTool("demo", "echo", { message: "warm" })
      const busy = yield* Effect.forkChild(m.callTool("demo", "slow", { ms: 3_000 }, { timeout: "10 seconds" }))
      yield* Effect.flatMap(m.pool.stats("demo"), (s) => s.leases >= 1 ? Effect.void : Effect.fail("idle")).pipe(
        Effect.eventually,
        Effect.timeout("5 seconds")
      )
      const waits = yield* Effect.forEach([0, 1, 2], () => timed(m.callTool("demo", "echo", { message: "x" }, { timeout: 500 })), {
        concurrency: "unbounded"
      })
      for (const w of waits) {
        assert.strictEqual(tagOf(w.exit), "McpTimeoutError")
        assert.isAtLeast(w.ms, 450)
        assert.isBelow(w.ms, 500 + SLACK_MS, `waited ${Math.round(w.ms)} ms`)
      }
      // The queueing was our own saturation: the breaker (threshold 1) did not count it, nor lastError.
      assert.strictEqual((yield* m.status("demo")).breaker, "Closed")
      assert.isUndefined((yield* m.status("demo")).lastError)
      assert.strictEqual(tagOf(yield* Fiber.await(busy)), "Success")
      // `timeoutScope: "wire"` keeps the old meaning: the wait is bounded by acquireTimeout alone.
      const busy2 = yield* Effect.forkChild(m.callTool("demo", "slow", { ms: 800 }, { timeout: "10 seconds" }))
      yield* Effect.flatMap(m.pool.stats("demo"), (s) => s.leases >= 1 ? Effect.void : Effect.fail("idle")).pipe(
        Effect.eventually,
        Effect.timeout("5 seconds")
      )
      const wire = yield* timed(m.callTool("demo", "echo", { message: "x" }, { timeout: 500, timeoutScope: "wire" }))
      assert.strictEqual(tagOf(wire.exit), "Success")
      assert.isAtLeast(wire.ms, 500)
      yield* Fiber.join(busy2)
    }).pipe(Effect.provide(managerLayer({
      mcpServers: {
        demo: {
          ...demo(uniqueMarker("f4")),
          keel: { pool: { maxConnections: 1, maxRequestsPerConnection: 1 }, breaker: { consecutiveFailureThreshold: 1 } }
        }
      }
    }))), 60_000)
})

describe("faults 5: timeout values", () => {
  it.live("0, negative and unparseable call timeouts are typed errors; 30 days and infinity work", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      for (const timeout of [0, -5, "soon", "-1 seconds"]) {
        const e = yield* Effect.flip(m.callTool("demo", "echo", { message: "x" }, { timeout: timeout as never }))
        assert.strictEqual(e._tag, "McpConfigError")
        if (e._tag === "McpConfigError") assert.strictEqual(e.path, "callTool.options.timeout")
      }
      const bad = yield* Effect.flip(m.callTool("demo", "echo", { message: "x" }, { maxTotalTimeout: "never" as never, onProgress: () => {} }))
      assert.strictEqual(bad._tag, "McpConfigError")
      // Long timeouts are clamped to Node's timer limit instead of firing after 1 ms.
      for (const timeout of ["30 days", Duration.infinity, 2 ** 40] as const) {
        const r = yield* m.callTool("demo", "slow", { ms: 50 }, { timeout })
        assert.strictEqual(r.content[0]?.type, "text")
      }
      const status = yield* m.status("demo")
      assert.strictEqual(status.breaker, "Closed")
      assert.isUndefined(status.lastError)
    }).pipe(Effect.provide(managerLayer({
      mcpServers: {
        demo: { ...demo(uniqueMarker("f5")), keel: { breaker: { consecutiveFailureThreshold: 1 }, timeouts: { call: "30 days", tools: { slow: null } } } }
      }
    }))), 60_000)

  it.effect("a config timeout of 0 or -5 is an McpConfigError naming its path", () =>
    Effect.gen(function*() {
      for (const call of [0, -5]) {
        const e = yield* Effect.flip(Layer.build(managerLayer({
          mcpServers: { demo: { ...demo("unused"), keel: { timeouts: { call } } } }
        })).pipe(Effect.scoped))
        assert.strictEqual(e._tag, "McpConfigError")
        assert.strictEqual(e.path, "mcpServers.demo.keel.timeouts.call")
      }
    }))
})

describe("faults 6: large tool lists", () => {
  it.live("100,000 tools: a typed McpMessageTooLargeError under the default limit, never retried or counted; usable once the limit allows", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const small = yield* timed(m.listTools("small"))
      assert.strictEqual(tagOf(small.exit), "McpMessageTooLargeError")
      assert.strictEqual((yield* m.status("small")).breaker, "Closed")
      assert.strictEqual((yield* (yield* m.breaker("small")).stats).failedCalls, 0)
      const tools = yield* m.listTools("large")
      assert.strictEqual(tools.length, 100_002)
      const r = yield* m.callTool("large", "tool_099999", { x: 1 })
      assert.strictEqual(r.content[0]?.type === "text" ? r.content[0].text : "", "ok")
    }).pipe(Effect.provide(managerLayer({
      mcpServers: {
        small: hostile("--tools", "100000"),
        large: { ...hostile("--tools", "100000"), maxMessageBytes: 64 * 1024 * 1024 }
      }
    }))), 120_000)
})

describe("faults 7: one bad tool does not hide the others", () => {
  it.live("the good tools stay listed and callable; the bad one is an InvalidToolError; nothing counts", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const tools = yield* m.listTools("bad")
      assert.deepStrictEqual(tools.map((t) => t.name).sort(), ["add", "echo"])
      const echoed = yield* m.callTool("bad", "echo", { message: "hi" })
      assert.strictEqual(echoed.content[0]?.type === "text" ? echoed.content[0].text : "", "hi")
      const skipped = yield* m.callTool("bad", "add", { a: 1, b: 2 }, { skipValidation: true })
      assert.strictEqual(skipped.content[0]?.type === "text" ? skipped.content[0].text : "", "3")
      for (const name of ["broken", "broken_props"]) {
        const e = yield* Effect.flip(m.callTool("bad", name, {}))
        assert.strictEqual(e._tag, "InvalidToolError")
        if (e._tag === "InvalidToolError") assert.match(e.reason, /inputSchema/)
      }
      const status = yield* m.status("bad")
      assert.strictEqual(status.breaker, "Closed")
      assert.isUndefined(status.lastError)
      assert.strictEqual((yield* (yield* m.breaker("bad")).stats).failedCalls, 0)
    }).pipe(Effect.provide(managerLayer({
      mcpServers: { bad: { ...hostile("--bad-schema"), keel: { breaker: { consecutiveFailureThreshold: 1 } } } }
    }))), 60_000)
})

describe("faults 8: the cause is kept", () => {
  it.live("CircuitOpenError carries the failure that opened it; lastError is the server's last real failure", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      for (let i = 0; i < 3; i++) {
        const e = yield* Effect.flip(m.callTool("demo", "flaky", { key: "k", failFirst: 100 }))
        assert.strictEqual(e._tag, "McpProtocolError")
      }
      const rejected = yield* Effect.flip(m.callTool("demo", "flaky", { key: "k", failFirst: 100 }))
      assert.strictEqual(rejected._tag, "CircuitOpenError")
      const openedBy = (rejected as CircuitOpenError).openedBy as { _tag?: string; message?: string } | undefined
      assert.strictEqual(openedBy?._tag, "McpProtocolError")
      assert.match(openedBy?.message ?? "", /flaky failure #2/)
      const status = yield* m.status("demo")
      assert.strictEqual(status.breaker, "Open")
      assert.strictEqual(status.lastError?.tag, "McpProtocolError")
    }).pipe(Effect.provide(managerLayer({
      mcpServers: { demo: { ...demo(uniqueMarker("f8")), keel: { breaker: { consecutiveFailureThreshold: 3, waitDurationInOpen: 60_000 } } } }
    }))), 60_000)

  it.live("in-flight calls on a killed HTTP server fail with the crash they hit, not CircuitOpenError", () =>
    Effect.gen(function*() {
      const server = yield* demoHttpServer()
      const layer = managerLayer({
        mcpServers: { http: { type: "http", url: server.url, keel: { breaker: { consecutiveFailureThreshold: 1, waitDurationInOpen: 60_000 } } } }
      }, { connectTimeoutMs: 2_000 })
      yield* Effect.gen(function*() {
        const m = yield* McpClientManager
        yield* m.callTool("http", "echo", { message: "warm" })
        const inFlight = yield* Effect.forkChild(Effect.forEach(
          Array.from({ length: 8 }, (_, i) => i),
          () => timed(m.callTool("http", "slow", { ms: 5_000 }, { timeout: "10 seconds" })),
          { concurrency: "unbounded" }
        ))
        yield* Effect.sleep("300 millis")
        process.kill(server.pid, "SIGKILL")
        const results = yield* Fiber.join(inFlight)
        for (const r of results) {
          assert.include(["McpClosedError", "McpConnectError"], tagOf(r.exit))
          assert.isBelow(r.ms, 10_000)
        }
        const after = yield* Effect.flip(m.callTool("http", "echo", { message: "x" }))
        assert.strictEqual(after._tag, "CircuitOpenError")
        assert.isDefined((after as CircuitOpenError).openedBy)
        const status = yield* m.status("http")
        assert.notStrictEqual(status.lastError?.tag, "CircuitOpenError")
        assert.include(["McpClosedError", "McpConnectError"], status.lastError?.tag)
      }).pipe(Effect.provide(layer))
    }), 60_000)
})

describe("faults 10-12: config typos, paths and durations through the manager's layer", () => {
  it.effect("a typo anywhere fails the layer with the path and the key probably meant", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Layer.build(McpClientManager.layerConfig({
        mcpServers: { a: { command: "node", keel: { breaker: { waitDurationInOpenn: 5_000 } } } }
      })).pipe(Effect.scoped))
      assert.strictEqual(e._tag, "McpConfigError")
      assert.strictEqual(e.path, "mcpServers.a.keel.breaker.waitDurationInOpenn")
      assert.match(e.message, /did you mean "waitDurationInOpen"/)
      const d = yield* Effect.flip(Layer.build(McpClientManager.layerConfig({
        mcpServers: { a: { command: "node" } },
        keel: { defaults: { pool: { maxConnections: -1 } } }
      })).pipe(Effect.scoped))
      assert.strictEqual(d.path, "keel.defaults.pool.maxConnections")
    }))
})

describe("faults 13: untrusted names are bounded and escaped in messages", () => {
  it.live("a 10 KB tool name and one with a newline and ANSI escapes", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const tools = yield* m.listTools("evil")
      const long = tools.find((t) => t.name.length === 10_240)
      const ansi = tools.find((t) => t.name.includes("\u001b"))
      assert.isDefined(long)
      assert.isDefined(ansi)
      const unknown = yield* Effect.flip(m.callTool("evil", "no\nsuch\u001b[0m" + "y".repeat(5_000), {}))
      assert.strictEqual(unknown._tag, "UnknownToolError")
      const badArgs = yield* Effect.flip(m.callTool("evil", ansi!.name, { n: "not a number" }))
      assert.strictEqual(badArgs._tag, "InvalidArgumentsError")
      const badLong = yield* Effect.flip(m.callTool("evil", long!.name, 5 as never, { skipValidation: true }))
      assert.strictEqual(badLong._tag, "InvalidArgumentsError")
      for (const e of [unknown, badArgs, badLong]) {
        assert.notMatch(e.message, /[\n\u001b]/, "no raw newline or escape")
        assert.isBelow(e.message.length, 4_000, "bounded")
      }
      assert.include(unknown.message, "\\n")
      assert.include(badArgs.message, "\\x1b")
      // The data fields keep the names as they are.
      if (unknown._tag === "UnknownToolError") assert.include(unknown.available, ansi!.name)
    }).pipe(Effect.provide(managerLayer({ mcpServers: { evil: hostile("--evil-names") } }))), 60_000)
})
