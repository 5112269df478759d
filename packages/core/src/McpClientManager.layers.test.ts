/**
 * McpClientManager as a composition of services: over a fake `ConnectionPool` layer (TestClock for time),
 * with another `ToolCache` layer, and two managers sharing one pool (real demo-server children).
 */
import { assert, describe, it } from "@effect/vitest"
import type { CallToolResult, ListToolsResult, Tool } from "@modelcontextprotocol/client"
import { demoStdio } from "@keel/demo-server"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { CircuitBreakerRegistry } from "./CircuitBreaker.ts"
import * as ConnectionPool from "./ConnectionPool.ts"
import { UnknownServerError } from "./ManagerErrors.ts"
import type { McpConnection } from "./McpClient.ts"
import { McpClientManager } from "./McpClientManager.ts"
import { McpConfig } from "./McpConfig.ts"
import { McpClosedError, type McpError } from "./McpError.ts"
import * as SessionHooks from "./SessionHooks.ts"
import { ToolCache } from "./ToolCache.ts"
import { eventually, pidsWithMarker, uniqueMarker } from "./testing/processes.ts"

// ---------------------------------------------------------------------------------------------------------
// A fake pool: one fake session per server, scripted answers, a log of what the manager asked for.
// ---------------------------------------------------------------------------------------------------------

const tools: Array<Tool> = [
  { name: "read", annotations: { readOnlyHint: true }, inputSchema: { type: "object", properties: { q: { type: "string" } }, required: ["q"] } },
  { name: "write", inputSchema: { type: "object", properties: { q: { type: "string" } } } }
]

interface FakeLog {
  added: Array<string>
  removed: Array<string>
  listTools: number
  calls: Array<string>
  healthChecks: number
  /** Errors the next calls fail with, in order (then successes). */
  failNext: Array<McpError>
}

const fakeStats = (server: string): ConnectionPool.PoolStats => ({
  server,
  total: 1,
  active: 0,
  idle: 1,
  starting: 0,
  pending: 0,
  leases: 0,
  maxConnections: 1,
  acquired: 0,
  released: 0,
  created: 1,
  destroyed: {} as ConnectionPool.PoolStats["destroyed"],
  timeouts: 0,
  waits: 0,
  connectFailures: 0,
  suspectedLeaks: 0
})

const fakeConnection = (server: string, log: FakeLog): McpConnection =>
  ({
    name: server,
    listTools: () => Effect.sync((): ListToolsResult => (log.listTools++, { tools })),
    callTool: (name: string, args?: Record<string, unknown>) =>
      Effect.suspend(() => {
        log.calls.push(name)
        const error = log.failNext.shift()
        return error !== undefined
          ? Effect.fail(error)
          : Effect.succeed<CallToolResult>({ content: [{ type: "text", text: `${name}:${String(args?.q)}` }] })
      }),
    ping: () => Effect.void
  }) as unknown as McpConnection

const fakePool = (log: FakeLog): ConnectionPool.ConnectionPoolShape => {
  const servers = new Set<string>()
  const unknown = (server: string) => new UnknownServerError({ server, available: [...servers], message: `no ${server}` })
  return {
    config: ConnectionPool.defaultConfig,
    add: (name) => Effect.sync(() => (servers.add(name), log.added.push(name))),
    remove: (name) => servers.has(name) ? Effect.sync(() => (servers.delete(name), log.removed.push(name))) : Effect.fail(unknown(name)),
    list: Effect.sync(() => [...servers]),
    get: (server) => Effect.succeed(fakeConnection(server, log)),
    use: (server, f) => servers.has(server) ? f(fakeConnection(server, log)) : Effect.fail(unknown(server)),
    invalidate: () => Effect.void,
    stats: (server) => servers.has(server) ? Effect.succeed(fakeStats(server)) : Effect.fail(unknown(server)),
    statsAll: Effect.sync(() => [...servers].map(fakeStats)),
    healthCheck: () => Effect.sync(() => (log.healthChecks++, { ok: 1, checked: 1 }))
  }
}

const newLog = (): FakeLog => ({ added: [], removed: [], listTools: 0, calls: [], healthChecks: 0, failNext: [] })

const closed = () => new McpClosedError({ server: "fake", method: "tools/call", message: "closed under the call" })

/** The manager over a fake pool, the default cache and registry, and a config with one server. */
const overFakePool = (log: FakeLog, options: Parameters<typeof McpClientManager.layer>[0] = {}) =>
  McpClientManager.layer(options).pipe(
    Layer.provide(Layer.succeed(ConnectionPool.ConnectionPool, fakePool(log))),
    Layer.provide(CircuitBreakerRegistry.layer()),
    Layer.provide(McpClientManager.layerToolCache),
    Layer.provideMerge(McpConfig.layerConfig({ mcpServers: { fake: { command: "never-started" } } }, {}))
  )

const logFor = { retry: newLog(), refetch: newLog(), health: newLog(), disconnect: newLog() }

describe("McpClientManager over a fake ConnectionPool layer", () => {
  it.effect("adds its servers to the pool, calls through it, caches the list, and removes them when closed", () =>
    Effect.gen(function*() {
      const log = newLog()
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(overFakePool(log), scope)
      const m = Context.get(context, McpClientManager)
      assert.deepStrictEqual(log.added, ["fake"])
      assert.deepStrictEqual((yield* m.listTools("fake")).map((t) => t.name), ["read", "write"])
      const r = yield* m.callTool("fake", "read", { q: "x" })
      assert.deepStrictEqual(r.content, [{ type: "text", text: "read:x" }])
      assert.strictEqual(log.listTools, 1) // the second lookup was a cache hit
      assert.strictEqual((yield* m.status("fake")).pool.created, 1)
      const invalid = yield* Effect.flip(m.callTool("fake", "read", {}))
      assert.strictEqual(invalid._tag, "InvalidArgumentsError")
      assert.deepStrictEqual(log.calls, ["read"]) // nothing sent for the invalid call
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(log.removed, ["fake"])
    }))

  it.effect("retries a session closed under a read-only call, never under a call with no hint", () =>
    Effect.gen(function*() {
      const log = logFor.retry
      const m = yield* McpClientManager
      log.failNext.push(closed())
      const r = yield* m.callTool("fake", "read", { q: "again" })
      assert.deepStrictEqual(r.content, [{ type: "text", text: "read:again" }])
      assert.deepStrictEqual(log.calls, ["read", "read"])
      log.failNext.push(closed())
      const e = yield* Effect.flip(m.callTool("fake", "write", { q: "once" }))
      assert.strictEqual(e._tag, "McpClosedError")
      assert.deepStrictEqual(log.calls, ["read", "read", "write"])
    }).pipe(Effect.provide(Layer.suspend(() => overFakePool(logFor.retry)))))

  it.effect("an unknown tool refetches tools/list at most once a second, by the Clock", () =>
    Effect.gen(function*() {
      const log = logFor.refetch
      const m = yield* McpClientManager
      yield* m.listTools("fake")
      assert.strictEqual(log.listTools, 1)
      for (let i = 0; i < 3; i++) {
        const e = yield* Effect.flip(m.callTool("fake", "nope"))
        assert.strictEqual(e._tag, "UnknownToolError")
      }
      assert.strictEqual(log.listTools, 2)
      yield* TestClock.adjust("999 millis")
      yield* Effect.flip(m.callTool("fake", "nope"))
      assert.strictEqual(log.listTools, 2)
      yield* TestClock.adjust("1 millis")
      yield* Effect.flip(m.callTool("fake", "nope"))
      assert.strictEqual(log.listTools, 3)
    }).pipe(Effect.provide(Layer.suspend(() => overFakePool(logFor.refetch)))))

  it.effect("health checks and lastError are timed by the Clock", () =>
    Effect.gen(function*() {
      const log = logFor.health
      const m = yield* McpClientManager
      yield* TestClock.adjust("9999 millis")
      assert.strictEqual(log.healthChecks, 0)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(log.healthChecks, 1)
      assert.deepStrictEqual((yield* m.status("fake")).lastHealthCheck, { ok: true, at: 10_000 })
      yield* TestClock.adjust("5 seconds")
      log.failNext.push(closed())
      yield* Effect.flip(m.callTool("fake", "write", {}))
      const status = yield* m.status("fake")
      assert.strictEqual(status.lastError?.tag, "McpClosedError")
      assert.strictEqual(status.lastError?.at, 15_000)
    }).pipe(Effect.provide(Layer.suspend(() => overFakePool(logFor.health, { healthCheckInterval: "10 seconds" })))))

  it.effect("disconnect removes the server from the pool and the registry and drops its cache entries", () =>
    Effect.gen(function*() {
      const log = logFor.disconnect
      const m = yield* McpClientManager
      yield* m.listTools("fake")
      assert.deepStrictEqual(yield* m.cache.servers, ["fake"])
      yield* m.disconnect("fake")
      assert.deepStrictEqual(log.removed, ["fake"])
      assert.deepStrictEqual(yield* m.cache.servers, [])
      assert.isFalse((yield* m.registry.states).has("fake"))
      const gone = yield* Effect.flip(m.callTool("fake", "read", { q: "x" }))
      assert.strictEqual(gone._tag, "UnknownServerError")
      // connect at run time adds it back, through the same services
      yield* m.connect("fake", { type: "stdio", command: "never-started" })
      assert.deepStrictEqual(log.added, ["fake", "fake"])
      assert.isTrue((yield* m.registry.states).has("fake"))
    }).pipe(Effect.provide(Layer.suspend(() => overFakePool(logFor.disconnect)))))
})


describe("McpClientManager config errors are typed, naming the path", () => {
  it.effect("a breaker that could never close fails the layer with McpConfigError, not a defect", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(overFakePoolWith({
        mcpServers: { fake: { command: "x", keel: { breaker: { successThresholdToClose: 5, permittedCallsInHalfOpen: 2 } } } }
      }))))
      assert.strictEqual(error._tag, "McpConfigError")
      assert.strictEqual(error.path, "mcpServers.fake.keel.breaker.successThresholdToClose")
    }))

  it.effect("connect at run time: a bad setting is an McpConfigError naming the server's path", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const e = yield* Effect.flip(m.connect("other", { type: "stdio", command: "x" }, { breaker: { failureRateThreshold: 2 } }))
      assert.strictEqual(e._tag, "McpConfigError")
      if (e._tag !== "McpConfigError") return assert.fail(e._tag)
      assert.strictEqual(e.path, "other.keel.breaker.failureRateThreshold")
      assert.deepStrictEqual([...(yield* m.servers)], ["fake"])
    }).pipe(Effect.provide(Layer.suspend(() => overFakePool(newLog())))))
})

const overFakePoolWith = (json: unknown) =>
  McpClientManager.layer().pipe(
    Layer.provide(Layer.succeed(ConnectionPool.ConnectionPool, fakePool(newLog()))),
    Layer.provide(CircuitBreakerRegistry.layer()),
    Layer.provide(McpClientManager.layerToolCache),
    Layer.provide(McpConfig.layerConfig(json, {}))
  )

// ---------------------------------------------------------------------------------------------------------
// Real demo-server children
// ---------------------------------------------------------------------------------------------------------

const demo = (flags: Parameters<typeof demoStdio>[0] = {}) => ({ type: "stdio", ...demoStdio(flags) })

const listToolsRequests = (m: McpClientManager["Service"], server: string) =>
  Effect.map(m.callTool(server, "stats"), (r) =>
    (JSON.parse(r.content[0]?.type === "text" ? r.content[0].text : "{}") as { listToolsRequests: number }).listToolsRequests)

describe("McpClientManager composed from layers (real processes)", () => {
  it.live("another ToolCache layer serves both the manager and the pool's session hooks", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(
        McpClientManager.layer().pipe(
          Layer.provide(Layer.mergeAll(
            McpClientManager.layerConnectionPool().pipe(Layer.provide(SessionHooks.layer())),
            CircuitBreakerRegistry.layer()
          )),
          Layer.provideMerge(ToolCache.layer({ name: "custom", policy: "fifo", capacity: 3 })),
          Layer.provide(McpConfig.layerConfig({ mcpServers: { demo: demo() } }))
        )
      )
      const m = Context.get(context, McpClientManager)
      const custom = Context.get(context, ToolCache)
      assert.strictEqual(m.cache, custom)
      yield* m.listTools("demo")
      yield* m.listTools("demo")
      const stats = yield* custom.stats
      assert.strictEqual(stats.misses, 1)
      assert.isAtLeast(stats.hits, 1)
      assert.strictEqual(yield* listToolsRequests(m, "demo"), 1)
      // list_changed reaches this cache through the hooks the pool ran for the session.
      yield* m.callTool("demo", "set_tools", { add: ["weather"] })
      yield* Effect.flatMap(m.listTools("demo"), (list) => list.some((t) => t.name === "weather") ? Effect.void : Effect.fail("stale")).pipe(
        Effect.eventually,
        Effect.timeout(5_000)
      )
      assert.isAtLeast((yield* custom.stats).evictions.invalidated, 1)
    }).pipe(Effect.scoped))

  it.live("two managers share one ConnectionPool: each adds and removes only its own servers", () =>
    Effect.gen(function*() {
      const marker = uniqueMarker("shared-pool")
      const shared = yield* Layer.build(
        Layer.mergeAll(
          ConnectionPool.ConnectionPool.layer({ maxConnections: 2 }).pipe(Layer.provide(SessionHooks.layer())),
          CircuitBreakerRegistry.layer()
        ).pipe(Layer.provideMerge(ToolCache.layer()))
      )
      const managerOver = (json: unknown, scope: Scope.Scope) =>
        Effect.map(
          Layer.buildWithScope(
            McpClientManager.layer().pipe(Layer.provide(McpConfig.layerConfig(json)), Layer.provide(Layer.succeedContext(shared))),
            scope
          ),
          (context) => Context.get(context, McpClientManager)
        )
      const scopeA = yield* Scope.make()
      const a = yield* managerOver({ mcpServers: { alpha: demo({ name: marker }) } }, scopeA)
      const b = yield* managerOver({ mcpServers: { beta: demo() } }, yield* Effect.scope)
      assert.strictEqual(a.pool, b.pool)
      assert.strictEqual(a.pool, Context.get(shared, ConnectionPool.ConnectionPool))
      assert.deepStrictEqual([...(yield* a.pool.list)], ["alpha", "beta"])
      assert.deepStrictEqual([...(yield* a.servers)], ["alpha"])
      yield* a.callTool("alpha", "echo", { message: "a" })
      yield* b.callTool("beta", "echo", { message: "b" })
      assert.strictEqual(pidsWithMarker(marker).length, 1)
      // B cannot take over A's server in the shared pool.
      const taken = yield* Effect.flip(b.connect("alpha", { type: "stdio", command: "x" }))
      assert.strictEqual(taken._tag, "ServerExistsError")
      // Closing A removes alpha (its child ends); B keeps working on the same pool.
      yield* Scope.close(scopeA, Exit.void)
      assert.deepStrictEqual([...(yield* b.pool.list)], ["beta"])
      yield* eventually(() => pidsWithMarker(marker).length === 0, 5_000, "alpha's child gone")
      const r = yield* b.callTool("beta", "echo", { message: "still here" })
      assert.deepStrictEqual(r.content, [{ type: "text", text: "still here" }])
    }).pipe(Effect.scoped))
})
