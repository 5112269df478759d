/**
 * McpAuth against real things: the demo server over Streamable HTTP behind the SDK's bearer-auth helpers,
 * and a local OAuth 2.1 authorization server on 127.0.0.1 that counts every token request. SDK clients
 * here use the transport options McpAuth hands McpClient, so what is measured is the shared state itself.
 */
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client"
import { DemoState, parseOptions, serveHttp } from "@keel/demo-server"
import { type DemoAuthServer, protect, startAuthServer } from "@keel/demo-server/auth"
import { Effect, Redacted, Schema } from "effect"
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { defaultClassifier } from "./CircuitBreaker.ts"
import * as McpAuth from "./McpAuth.ts"

let authServer: DemoAuthServer
let demo: Awaited<ReturnType<typeof serveHttp>>
let server: Awaited<ReturnType<typeof protect>>
const secret = "s3cret-client-secret"

beforeAll(async () => {
  authServer = await startAuthServer({ clients: [{ clientId: "machine", clientSecret: secret }], scopes: ["mcp", "admin"] })
  demo = await serveHttp(new DemoState(parseOptions(["--transport", "http", "--protocol-version", "2025-11-25"])))
  server = await protect(demo.http, { authServer })
})
afterAll(async () => {
  await server?.close()
  await demo?.close()
  await authServer?.close()
})

const connect = async (state: McpAuth.SessionAuth) => {
  const client = new Client({ name: "t", version: "1" }, { capabilities: {} })
  const transport = new StreamableHTTPClientTransport(new URL(server.url), state.transportOptions((i, init) => fetch(i, init)))
  try {
    await client.connect(transport)
  } catch (e) {
    await client.close().catch(() => {})
    throw e
  }
  return client
}

const delta = (before: Record<string, number>, after: Record<string, number>) =>
  Object.fromEntries(Object.keys(after).map((k) => [k, after[k]! - (before[k] ?? 0)]).filter(([, v]) => v !== 0))

const decode = Schema.decodeUnknownSync(McpAuth.AuthConfig)

/** The "browser": follows the authorization URL (the demo AS approves at once) and returns the callback query. */
const approve = async (authorizationUrl: string) => {
  const response = await fetch(authorizationUrl, { redirect: "manual" })
  return new URL(response.headers.get("location")!).searchParams
}

describe("McpAuth", () => {
  it("the breaker's default classifier ignores auth errors (not the server failing)", () => {
    expect(defaultClassifier(new McpAuth.AuthorizationRequiredError({ server: "s", authorizationUrl: "http://a/authorize", message: "m" }), false)).toBe("ignore")
    expect(defaultClassifier(new McpAuth.McpAuthError({ server: "s", message: "invalid_client", status: 401 }), true)).toBe("ignore")
  })

  it("decodes auth configs with Redacted secrets and names what is missing", () => {
    const cc = decode({ type: "client_credentials", clientId: "a", clientSecret: "x" })
    expect(cc.type === "client_credentials" && Redacted.isRedacted(cc.clientSecret)).toBe(true)
    expect(String(cc.type === "client_credentials" ? cc.clientSecret : "")).not.toContain("x")
    expect(() => decode({ type: "client_credentials", clientId: "a" })).toThrow(/exactly one of clientSecret, privateKey or assertion/)
    expect(() => decode({ type: "cross_app_access", clientId: "a", clientSecret: "b", idpClientId: "c", idToken: "d" })).toThrow(/idpUrl or idpTokenEndpoint/)
    expect(decode({ type: "oauth" })).toEqual({ type: "oauth" })
  })

  it("client credentials: concurrent sessions of one server share one token request", async () => {
    const registry = McpAuth.makeWith(await Effect.runPromise(Effect.service(McpAuth.TokenStore).pipe(Effect.provide(McpAuth.TokenStore.layerMemory))))
    const state = registry.forServer("machine", server.url, decode({ type: "client_credentials", clientId: "machine", clientSecret: secret, expectedIssuer: authServer.issuer }))
    const before = authServer.stats().tokenRequests
    const clients = await Promise.all(Array.from({ length: 4 }, () => connect(state)))
    try {
      await Promise.all(clients.map((c) => c.listTools()))
      // A session opened later reuses the tokens.
      clients.push(await connect(state))
      await clients.at(-1)!.listTools()
      expect(delta(before, authServer.stats().tokenRequests)).toEqual({ client_credentials: 1 })
    } finally {
      await Promise.all(clients.map((c) => c.close()))
    }
  })

  it("authorization code: AuthorizationRequiredError with the URL, finishAuth, then sessions go through; expiry is one rotating refresh for all", async () => {
    const registry = McpAuth.makeWith(await Effect.runPromise(Effect.service(McpAuth.TokenStore).pipe(Effect.provide(McpAuth.TokenStore.layerMemory))))
    const state = registry.forServer("user", server.url, decode({ type: "oauth", scopes: ["mcp"] }))
    const before = authServer.stats()
    const failure = await connect(state).then(() => undefined, (e: unknown) => e)
    const error = state.toError(failure)
    expect(error?._tag).toBe("AuthorizationRequiredError")
    const url = (error as McpAuth.AuthorizationRequiredError).authorizationUrl
    expect(url).toMatch(new RegExp(`^${authServer.issuer}/authorize\\?`))
    expect(new URL(url).searchParams.get("code_challenge_method")).toBe("S256")
    expect(new URL(url).searchParams.get("resource")).toBe(server.url)
    // A second session while the authorization is pending reports the same URL (no second flow).
    const again = state.toError(await connect(state).then(() => undefined, (e: unknown) => e))
    expect((again as McpAuth.AuthorizationRequiredError).authorizationUrl).toBe(url)

    await Effect.runPromise(registry.finishAuth("user", await approve(url)))
    const clients = await Promise.all(Array.from({ length: 3 }, () => connect(state)))
    try {
      await Promise.all(clients.map((c) => c.listTools()))
      expect(delta(before.tokenRequests, authServer.stats().tokenRequests)).toEqual({ authorization_code: 1 })
      expect(authServer.stats().registrations - before.registrations).toBe(1)

      // Every access token expires: the three sessions' 401s make one refresh; the rotated refresh token
      // is never presented twice.
      authServer.expireAccessTokens()
      await Promise.all(clients.map((c) => c.listTools()))
      expect(delta(before.tokenRequests, authServer.stats().tokenRequests)).toEqual({ authorization_code: 1, refresh_token: 1 })
      expect(authServer.stats().reusedRefreshTokens).toBe(before.reusedRefreshTokens)
    } finally {
      await Promise.all(clients.map((c) => c.close()))
    }
  })

  it("a 401 that arrives after another session already replaced the token is retried with the new one, no new grant", async () => {
    const registry = McpAuth.makeWith(await Effect.runPromise(Effect.service(McpAuth.TokenStore).pipe(Effect.provide(McpAuth.TokenStore.layerMemory))))
    const state = registry.forServer("late", server.url, decode({ type: "client_credentials", clientId: "machine", clientSecret: secret, expectedIssuer: authServer.issuer }))
    const before = authServer.stats().tokenRequests
    // Session B's fetch holds its next 401 for 300 ms: by then session A has recovered.
    let holdNext401 = false
    const slow = new Client({ name: "b", version: "1" }, { capabilities: {} })
    await slow.connect(new StreamableHTTPClientTransport(new URL(server.url), state.transportOptions(async (i, init) => {
      const r = await fetch(i, init)
      if (holdNext401 && r.status === 401) {
        holdNext401 = false
        await new Promise((resolve) => setTimeout(resolve, 300))
      }
      return r
    })))
    const fast = await connect(state)
    try {
      authServer.expireAccessTokens()
      holdNext401 = true
      const late = slow.listTools()
      await new Promise((resolve) => setTimeout(resolve, 50))
      await fast.listTools()
      await late
      expect(delta(before, authServer.stats().tokenRequests)).toEqual({ client_credentials: 2 })
    } finally {
      await Promise.all([slow.close(), fast.close()])
    }
  })

  it("a file store keeps tokens across a restart (mode 0600), and logout forgets them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "keel-auth-"))
    const path = join(dir, "tokens.json")
    try {
      const config = decode({ type: "client_credentials", clientId: "machine", clientSecret: secret, expectedIssuer: authServer.issuer })
      const store = () => Effect.runPromise(Effect.service(McpAuth.TokenStore).pipe(Effect.provide(McpAuth.TokenStore.layerFile(path))))
      const before = authServer.stats().tokenRequests
      const first = McpAuth.makeWith(await store()).forServer("machine", server.url, config)
      await (await connect(first)).close()
      expect(statSync(path).mode & 0o777).toBe(0o600)
      expect(JSON.parse(readFileSync(path, "utf8")).servers.machine.url).toBe(server.url)
      // "Restart": a new registry over the same file.
      const restarted = McpAuth.makeWith(await store()).forServer("machine", server.url, config)
      const client = await connect(restarted)
      await client.listTools()
      await client.close()
      expect(delta(before, authServer.stats().tokenRequests)).toEqual({ client_credentials: 1 })
      // Tokens stored for another URL are never sent to this one.
      const elsewhere = McpAuth.makeWith(await store()).forServer("machine", server.url.replace("/mcp", "/other"), config)
      expect(await elsewhere.provider.tokens()).toBeUndefined()
      await Effect.runPromise(restarted.logout)
      expect(JSON.parse(readFileSync(path, "utf8")).servers.machine).toBeUndefined()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a refused client is a McpAuthError naming the OAuth error, never the secret", async () => {
    const wrong = "wrong-secret-value"
    const state = McpAuth.makeWith(await Effect.runPromise(Effect.service(McpAuth.TokenStore).pipe(Effect.provide(McpAuth.TokenStore.layerMemory))))
      .forServer("bad", server.url, decode({ type: "client_credentials", clientId: "machine", clientSecret: wrong, expectedIssuer: authServer.issuer }))
    const error = state.toError(await connect(state).then(() => undefined, (e: unknown) => e))
    expect(error?._tag).toBe("McpAuthError")
    expect(error?.message).toMatch(/invalid_client/)
    expect(JSON.stringify(error) + String(error)).not.toContain(wrong)
  })
})


