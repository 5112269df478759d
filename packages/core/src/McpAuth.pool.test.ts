/**
 * McpAuth through the ConnectionPool: pooled sessions of one server share one token set. The demo server
 * over Streamable HTTP behind the SDK's bearer-auth helpers, and a local authorization server on
 * 127.0.0.1 that counts token requests.
 */
import { DemoState, parseOptions, serveHttp } from "@keel/demo-server"
import { type DemoAuthServer, protect, startAuthServer } from "@keel/demo-server/auth"
import { Effect, Exit, Latch, Layer, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as ConnectionPool from "./ConnectionPool.ts"
import * as McpAuth from "./McpAuth.ts"
import type { ServerConfig } from "./ServerConfig.ts"

let authServer: DemoAuthServer
let demo: Awaited<ReturnType<typeof serveHttp>>
let server: Awaited<ReturnType<typeof protect>>

beforeAll(async () => {
  authServer = await startAuthServer({ clients: [{ clientId: "machine", clientSecret: "pool-secret" }] })
  demo = await serveHttp(new DemoState(parseOptions(["--transport", "http"])))
  server = await protect(demo.http, { authServer })
})
afterAll(async () => {
  await server?.close()
  await demo?.close()
  await authServer?.close()
})

/** A fresh McpAuth (tokens in memory) for each test. */
const freshAuth = McpAuth.layer.pipe(Layer.provide(McpAuth.TokenStore.layerMemory))

const httpWithAuth = (auth: unknown): ServerConfig =>
  ({ type: "http", url: server.url, auth: Schema.decodeUnknownSync(McpAuth.AuthConfig)(auth) } as unknown as ServerConfig)

const delta = (before: Record<string, number>, after: Record<string, number>) =>
  Object.fromEntries(Object.keys(after).map((k) => [k, after[k]! - (before[k] ?? 0)]).filter(([, v]) => v !== 0))

/** `n` concurrent borrows, each holding its session until all have one: `n` distinct sessions. */
const concurrentSessions = (pool: ConnectionPool.ConnectionPoolShape, n: number) =>
  Effect.gen(function*() {
    const latch = yield* Latch.make()
    let borrowed = 0
    return yield* Effect.all(
      Array.from({ length: n }, () =>
        pool.use("docs", (c) =>
          Effect.gen(function*() {
            if (++borrowed === n) yield* latch.open
            yield* latch.await
            yield* c.listTools()
            return c
          }))),
      { concurrency: "unbounded" }
    )
  })

describe("McpAuth with the ConnectionPool", () => {
  it("client credentials: 4 pooled sessions, 1 token request", async () => {
    const before = authServer.stats().tokenRequests
    const sessions = await Effect.runPromise(Effect.gen(function*() {
      const pool = yield* ConnectionPool.make({ maxConnections: 4, maxRequestsPerConnection: 1 })
      yield* pool.add("docs", httpWithAuth({ type: "client_credentials", clientId: "machine", clientSecret: "pool-secret", expectedIssuer: authServer.issuer }))
      const lent = yield* concurrentSessions(pool, 4)
      return { distinct: new Set(lent).size, total: (yield* pool.stats("docs")).total }
    }).pipe(Effect.scoped, Effect.provide(freshAuth)))
    expect(sessions).toEqual({ distinct: 4, total: 4 })
    expect(delta(before, authServer.stats().tokenRequests)).toEqual({ client_credentials: 1 })
  })

  it("authorization code: the borrow fails typed with the URL; after finishAuth, 4 pooled sessions and 1 token request", async () => {
    const before = authServer.stats().tokenRequests
    const result = await Effect.runPromise(Effect.gen(function*() {
      const pool = yield* ConnectionPool.make({ maxConnections: 4, maxRequestsPerConnection: 1 })
      yield* pool.add("docs", httpWithAuth({ type: "oauth", redirectUrl: "http://127.0.0.1:8976/callback" }))
      const first = yield* Effect.exit(pool.use("docs", (c) => c.listTools()))
      const error = Exit.isFailure(first) ? first.cause : undefined
      const failure = yield* Effect.flip(pool.use("docs", (c) => c.listTools()))
      expect(failure._tag).toBe("AuthorizationRequiredError")
      const url = (failure as McpAuth.AuthorizationRequiredError).authorizationUrl
      // The user approves; the app's redirect handler passes the callback on.
      const callback = yield* Effect.promise(() => fetch(url, { redirect: "manual" }))
      yield* (yield* McpAuth.McpAuth).finishAuth("docs", new URL(callback.headers.get("location")!))
      const lent = yield* concurrentSessions(pool, 4)
      return { error, distinct: new Set(lent).size }
    }).pipe(Effect.scoped, Effect.provide(freshAuth)))
    expect(String(result.error)).toMatch(/AuthorizationRequiredError/)
    expect(result.distinct).toBe(4)
    expect(delta(before, authServer.stats().tokenRequests)).toEqual({ authorization_code: 1 })
  })
})
