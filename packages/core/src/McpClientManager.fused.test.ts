/**
 * The fused `callTool` step (see `fusedCall` in McpClientManager.ts) keeps the services' books exactly as
 * the general path does: the pool's leases, the breaker's counts, one metrics record per call (retries
 * included), and interruption. The demo server runs in-process over the SDK's `InMemoryTransport`.
 */
import { assert, describe, it } from "@effect/vitest"
import { InMemoryTransport } from "@modelcontextprotocol/client"
import { createDemoServer, DemoState, parseOptions } from "@keel/demo-server"
import { Effect, Exit, Fiber, Layer, Metric } from "effect"
import { CircuitBreakerRegistry } from "./CircuitBreaker.ts"
import * as ConnectionPool from "./ConnectionPool.ts"
import { McpClient } from "./McpClient.ts"
import { McpClientManager } from "./McpClientManager.ts"
import { McpConfig } from "./McpConfig.ts"
import { isCallerRefusal, type McpProtocolError } from "./McpError.ts"
import * as McpMetrics from "./McpMetrics.ts"
import * as SessionHooks from "./SessionHooks.ts"

/** Sessions lent by `tryLeaseUnsafe` (the fused step), across the tests' pools. */
let syncLeases = 0

/** The in-process servers' sessions, newest last (a test closes one to break its client's session). */
const serverSessions: Array<{ close(): Promise<void> }> = []

const inProcess = (pool: Record<string, unknown> = {}) => {
  const state = new DemoState(parseOptions([]))
  const linked = async () => {
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    const server = createDemoServer(state)
    await server.connect(serverSide as never)
    serverSessions.push(server)
    return clientSide
  }
  const poolLayer = McpClientManager.layerConnectionPool({
    connect: (name, config, options) =>
      Effect.flatMap(Effect.promise(linked), (transport) => McpClient.connect(name, config, { ...options, transport }))
  }).pipe(Layer.provide(SessionHooks.layer()))
  const spied = Layer.effect(
    ConnectionPool.ConnectionPool,
    Effect.map(Effect.service(ConnectionPool.ConnectionPool), (p): ConnectionPool.ConnectionPoolShape => ({
      ...p,
      tryLeaseUnsafe: (server) => {
        const lease = p.tryLeaseUnsafe!(server)
        if (lease !== undefined) syncLeases++
        return lease
      }
    }))
  ).pipe(Layer.provide(poolLayer))
  return McpClientManager.layer().pipe(
    Layer.provide(Layer.mergeAll(spied, CircuitBreakerRegistry.layer())),
    Layer.provide(McpClientManager.layerToolCache),
    Layer.provide(McpConfig.layerConfig({ mcpServers: { demo: { command: "in-process", keel: { pool } } } }))
  )
}

/** Requests recorded in `mcp.client.operation.duration` for `method` (any tool). */
const recordedRequests = (method: string) =>
  Effect.map(Metric.snapshot, (snapshot) =>
    snapshot
      .filter((s) => s.id === McpMetrics.Names.operationDuration && s.type === "Histogram" && s.attributes?.["mcp.method.name"] === method)
      .reduce((n, s) => n + (s.state as Metric.HistogramState).count, 0))

/** Calls recorded in `mcp.client.operation.duration` for `tools/call` of `tool`. */
const recordedCalls = (tool: string) =>
  Effect.map(Metric.snapshot, (snapshot) =>
    snapshot
      .filter((s) => s.id === McpMetrics.Names.operationDuration && s.type === "Histogram" && s.attributes?.["gen_ai.tool.name"] === tool)
      .reduce((n, s) => n + (s.state as Metric.HistogramState).count, 0))

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.provideService(self, Metric.MetricRegistry, new Map())

/** The manager after one warm call (the tool list cached, a session open), its breaker and the breaker's stats then. */
const warmed = Effect.gen(function*() {
  const m = yield* McpClientManager
  yield* m.callTool("demo", "add", { a: 0, b: 0 })
  const breaker = yield* m.breaker("demo")
  return { m, breaker, before: yield* breaker.stats }
})

describe("McpClientManager fused step", () => {
  it.live("sequential and concurrent calls: leases all returned, breaker and metrics count each call once", () =>
    isolated(
      Effect.gen(function*() {
        const m = yield* McpClientManager
        yield* m.callTool("demo", "add", { a: 0, b: 0 }) // the general path: fetches the list, opens a session
        const breaker = yield* m.breaker("demo")
        const before = yield* breaker.stats
        const pool0 = yield* m.pool.stats("demo")
        const lent0 = syncLeases
        for (let i = 0; i < 200; i++) {
          const r = yield* m.callTool("demo", "add", { a: i, b: 1 })
          assert.strictEqual(r.content[0]?.type === "text" ? r.content[0].text : "", String(i + 1))
        }
        yield* Effect.forEach(Array.from({ length: 64 }, (_, i) => i), (i) => m.callTool("demo", "add", { a: i, b: 1 }), {
          concurrency: 32,
          discard: true
        })
        const after = yield* breaker.stats
        const pool1 = yield* m.pool.stats("demo")
        assert.strictEqual(after.successfulCalls - before.successfulCalls, 264)
        assert.strictEqual(pool1.acquired - pool0.acquired, 264)
        assert.strictEqual(pool1.leases, 0)
        assert.strictEqual(pool1.active, 0)
        assert.strictEqual(pool1.released, pool1.acquired)
        assert.strictEqual(yield* recordedCalls("add"), 265)
        // The sequential calls all took the fused step; concurrent ones may wait for a session (general).
        assert.isAtLeast(syncLeases - lent0, 200)
      }).pipe(Effect.provide(inProcess({ maxConnections: 2, minIdle: 1, maxRequestsPerConnection: 8 })))
    ))

  it.live("failures: a tool error and a protocol error are counted by the breaker and metrics, lastError set, lease returned", () =>
    isolated(
      Effect.gen(function*() {
        const { before, breaker, m } = yield* warmed
        const toolError = yield* Effect.exit(m.callTool("demo", "fail", { kind: "isError" }))
        const protocolError = yield* Effect.exit(m.callTool("demo", "fail", { kind: "protocol", code: -32000 }))
        assert.isTrue(Exit.isFailure(toolError))
        assert.isTrue(Exit.isFailure(protocolError))
        const after = yield* breaker.stats
        assert.strictEqual(after.totalCalls - before.totalCalls, 2)
        assert.strictEqual(yield* recordedCalls("fail"), 2)
        assert.strictEqual((yield* m.status("demo")).lastError?.tag, "McpProtocolError")
        assert.strictEqual((yield* m.pool.stats("demo")).leases, 0)
        // Invalid arguments never reach the fused step's lease: a typed error, nothing borrowed.
        const invalid = yield* Effect.exit(m.callTool("demo", "add", { a: "x", b: 1 }))
        assert.isTrue(Exit.isFailure(invalid) && JSON.stringify(invalid.cause).includes("InvalidArgumentsError"))
        // A cycle below the top object is a typed error naming where it closes (JsonArguments.test.ts has the
        // properties), and counts nowhere.
        const cyclic: Record<string, unknown> = { message: "x", extra: { list: [{ deep: {} }] } }
        ;((cyclic.extra as { list: Array<{ deep: Record<string, unknown> }> }).list[0]!.deep).back = cyclic
        const circular = yield* Effect.flip(m.callTool("demo", "echo", cyclic))
        assert.strictEqual(circular._tag, "InvalidArgumentsError")
        assert.match(circular.message, /extra\/list\/0\/deep\/back: a circular reference/)
        const afterInvalid = yield* breaker.stats
        assert.strictEqual(afterInvalid.failedCalls, after.failedCalls)
        assert.strictEqual((yield* m.status("demo")).lastError?.tag, "McpProtocolError")
      }).pipe(Effect.provide(inProcess()))
    ))

  it.live("one callTool effect run again and twice at once: each run has its own lease, permit and record", () =>
    isolated(
      Effect.gen(function*() {
        const m = yield* McpClientManager
        yield* m.callTool("demo", "add", { a: 0, b: 0 })
        const call = m.callTool("demo", "slow", { ms: 50 })
        yield* Effect.all([call, call, call], { concurrency: "unbounded" })
        yield* call
        yield* call
        assert.strictEqual((yield* m.pool.stats("demo")).leases, 0)
        assert.strictEqual(yield* recordedCalls("slow"), 5)
      }).pipe(Effect.provide(inProcess()))
    ))

  it.live("a session closing under 8 fused calls is one breaker failure; the read-only calls are retried on a new session", () =>
    isolated(
      Effect.gen(function*() {
        const { before, breaker, m } = yield* warmed
        const leasesBefore = syncLeases
        const calls = yield* Effect.forkChild(
          Effect.all(Array.from({ length: 8 }, () => m.callTool("demo", "slow", { ms: 800 })), { concurrency: "unbounded" })
        )
        yield* Effect.sleep("100 millis")
        // All 8 were lent the one warm session by the fused step.
        assert.strictEqual(syncLeases - leasesBefore, 8)
        yield* Effect.promise(() => serverSessions.at(-1)!.close())
        const results = yield* Fiber.join(calls)
        assert.strictEqual(results.length, 8)
        const after = yield* breaker.stats
        assert.strictEqual(after.failedCalls - before.failedCalls, 1, "one close, one failure")
        assert.strictEqual(after.state, "Closed")
        assert.strictEqual((yield* m.pool.stats("demo")).leases, 0)
      }).pipe(Effect.provide(inProcess({ maxRequestsPerConnection: 32 })))
    ))

  it.live("resources and prompts take the same step: leases returned, breaker and metrics count each request once", () =>
    isolated(
      Effect.gen(function*() {
        const { before, breaker, m } = yield* warmed
        const leasesBefore = syncLeases
        for (let i = 0; i < 5; i++) {
          const read = yield* m.readResource("demo", "demo://readme")
          assert.isAbove(read.contents.length, 0)
          const prompt = yield* m.getPrompt("demo", "greet", { name: "Ada" })
          assert.isAbove(prompt.messages.length, 0)
        }
        yield* Effect.all(Array.from({ length: 8 }, () => m.readResource("demo", "demo://counter")), { concurrency: "unbounded" })
        // A missing resource fails on the same step: the server refused what the caller asked (not counted).
        const missing = yield* Effect.flip(m.readResource("demo", "demo://nope"))
        assert.strictEqual(missing._tag, "McpProtocolError")
        assert.isTrue(isCallerRefusal(missing as McpProtocolError))
        // Every request above was lent its session by the fused step (prompts/get checks its arguments against
        // the cached prompts/list, fetched once through the same step).
        assert.strictEqual(syncLeases - leasesBefore, 5 + 5 + 8 + 1 + 1)
        assert.strictEqual((yield* m.pool.stats("demo")).leases, 0)
        assert.strictEqual(yield* recordedRequests("resources/read"), 14)
        assert.strictEqual(yield* recordedRequests("prompts/get"), 5)
        const after = yield* breaker.stats
        assert.strictEqual(after.totalCalls - before.totalCalls, 5 + 5 + 8 + 1 + 1)
        assert.strictEqual(after.failedCalls - before.failedCalls, 0)
        assert.strictEqual(after.ignoredCalls - before.ignoredCalls, 1)
        assert.isUndefined((yield* m.status("demo")).lastError)
      }).pipe(Effect.provide(inProcess()))
    ))

  it.live("a call with only a timeout takes the step too, and its own timeout holds there", () =>
    isolated(
      Effect.gen(function*() {
        const { before, breaker, m } = yield* warmed
        const leasesBefore = syncLeases
        const ok = yield* m.callTool("demo", "add", { a: 2, b: 3 }, { timeout: "5 seconds" })
        assert.strictEqual((ok.content[0] as { text: string }).text, "5")
        const timedOut = yield* Effect.flip(m.callTool("demo", "slow", { ms: 2_000 }, { timeout: 100 }))
        assert.strictEqual(timedOut._tag, "McpTimeoutError")
        assert.strictEqual((timedOut as { timeoutMs?: unknown }).timeoutMs, 100)
        assert.strictEqual(syncLeases - leasesBefore, 2)
        // Other options, or an invalid timeout, take the general path (which reports the latter).
        yield* m.callTool("demo", "add", { a: 1, b: 1 }, { timeout: "5 seconds", skipValidation: true })
        const invalid = yield* Effect.flip(m.callTool("demo", "add", { a: 1, b: 1 }, { timeout: -5 }))
        assert.strictEqual(invalid._tag, "McpConfigError")
        assert.strictEqual(syncLeases - leasesBefore, 2)
        assert.strictEqual((yield* m.pool.stats("demo")).leases, 0)
        const after = yield* breaker.stats
        assert.strictEqual(after.failedCalls - before.failedCalls, 1) // the timeout
        assert.strictEqual(yield* recordedCalls("slow"), 1)
      }).pipe(Effect.provide(inProcess()))
    ))

  it.live("an interrupted call returns its lease and is recorded once as cancelled", () =>
    isolated(
      Effect.gen(function*() {
        const m = yield* McpClientManager
        yield* m.callTool("demo", "add", { a: 0, b: 0 })
        const fiber = yield* Effect.forkChild(m.callTool("demo", "slow", { ms: 5_000 }))
        yield* Effect.sleep("100 millis")
        assert.strictEqual((yield* m.pool.stats("demo")).leases, 1)
        yield* Fiber.interrupt(fiber)
        assert.strictEqual((yield* m.pool.stats("demo")).leases, 0)
        assert.strictEqual(yield* recordedCalls("slow"), 1)
        const breaker = yield* m.breaker("demo")
        assert.strictEqual((yield* breaker.stats).state, "Closed")
        // The session is lent again at once.
        yield* m.callTool("demo", "add", { a: 1, b: 1 })
      }).pipe(Effect.provide(inProcess()))
    ))
})
