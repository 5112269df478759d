/**
 * McpAuth through McpClientManager and the `mcpServers` config: the `auth` section (decoded, `${VAR}`
 * expanded, secrets Redacted), `AuthorizationRequiredError` + `manager.finishAuth`, and the breaker: neither
 * authorization-required nor a refused client ever opens it. Real demo server behind the SDK's bearer-auth
 * helpers, real authorization server on 127.0.0.1.
 */
import { DemoState, parseOptions, serveHttp } from "@keel/demo-server"
import { type DemoAuthServer, protect, startAuthServer } from "@keel/demo-server/auth"
import { Effect, Layer, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as McpAuth from "./McpAuth.ts"
import { McpClientManager } from "./McpClientManager.ts"
import { decodeConfig } from "./McpConfigFile.ts"

let authServer: DemoAuthServer
let demo: Awaited<ReturnType<typeof serveHttp>>
let server: Awaited<ReturnType<typeof protect>>

beforeAll(async () => {
  authServer = await startAuthServer({ clients: [{ clientId: "machine", clientSecret: "manager-secret" }] })
  demo = await serveHttp(new DemoState(parseOptions(["--transport", "http"])))
  server = await protect(demo.http, { authServer })
})
afterAll(async () => {
  await server?.close()
  await demo?.close()
  await authServer?.close()
})

const freshAuth = McpAuth.layer.pipe(Layer.provide(McpAuth.TokenStore.layerMemory))
/** A breaker that would open after 3 counted failures in a row. */
const touchy = { keel: { breaker: { consecutiveFailureThreshold: 3, minimumNumberOfCalls: 3 } } }

describe("McpAuth with McpClientManager", () => {
  it("decodes the auth section of a config file: ${VAR} expanded into a Redacted secret, errors name the path", async () => {
    const config = await Effect.runPromise(decodeConfig(
      { mcpServers: { docs: { url: "http://127.0.0.1:1/mcp", auth: { type: "client_credentials", clientId: "a", clientSecret: "${DOCS_SECRET}" } } } },
      { DOCS_SECRET: "expanded-secret" }
    ))
    const docs = config.servers.find((s) => s.name === "docs")!.config
    const auth = docs.type === "http" ? docs.auth : undefined
    expect(auth?.type === "client_credentials" && auth.clientSecret !== undefined && Redacted.value(auth.clientSecret)).toBe("expanded-secret")
    expect(JSON.stringify(config)).not.toContain("expanded-secret")
    const bad = await Effect.runPromise(Effect.flip(decodeConfig({ mcpServers: { docs: { url: "http://127.0.0.1:1/mcp", auth: { type: "client_credentials", clientId: "a" } } } }, {})))
    expect(`${bad.path}: ${bad.message}`).toMatch(/^mcpServers\.docs\.auth.*: needs exactly one of clientSecret, privateKey or assertion/)
  })

  it("authorization required: typed error with the URL, never counted by the breaker; finishAuth, then calls go through", async () => {
    const result = await Effect.runPromise(Effect.gen(function*() {
      const mcp = yield* McpClientManager
      const failures: Array<string> = []
      for (let i = 0; i < 6; i++) failures.push((yield* Effect.flip(mcp.listTools("docs")))._tag)
      const breakerBefore = (yield* mcp.status("docs")).breaker
      const error = yield* Effect.flip(mcp.callTool("docs", "echo", { message: "x" }))
      const url = error._tag === "AuthorizationRequiredError" ? error.authorizationUrl : ""
      const callback = yield* Effect.promise(() => fetch(url, { redirect: "manual" }))
      yield* mcp.finishAuth("docs", new URL(callback.headers.get("location")!))
      const echo = yield* mcp.callTool("docs", "echo", { message: "authorized" })
      return { failures, breakerBefore, echo: echo.content[0], breakerAfter: (yield* mcp.status("docs")).breaker }
    }).pipe(
      Effect.provide(McpClientManager.layerConfig({ mcpServers: { docs: { url: server.url, auth: { type: "oauth" }, ...touchy } } })),
      Effect.provide(freshAuth)
    ))
    expect(new Set(result.failures)).toEqual(new Set(["AuthorizationRequiredError"]))
    expect(result.breakerBefore).toBe("Closed")
    expect(result.echo).toEqual({ type: "text", text: "authorized" })
    expect(result.breakerAfter).toBe("Closed")
  })

  it("a refused client is McpAuthError on every call, the breaker stays closed, and the secret is in no error", async () => {
    const wrong = "wrong-manager-secret"
    const errors = await Effect.runPromise(Effect.gen(function*() {
      const mcp = yield* McpClientManager
      const out: Array<{ tag: string; text: string }> = []
      for (let i = 0; i < 5; i++) {
        const e = yield* Effect.flip(mcp.listTools("docs"))
        out.push({ tag: e._tag, text: `${String(e)} ${JSON.stringify(e)}` })
      }
      return { out, breaker: (yield* mcp.status("docs")).breaker }
    }).pipe(
      Effect.provide(McpClientManager.layerConfig({
        mcpServers: { docs: { url: server.url, auth: { type: "client_credentials", clientId: "machine", clientSecret: wrong, expectedIssuer: authServer.issuer }, ...touchy } }
      })),
      Effect.provide(freshAuth)
    ))
    expect(errors.out.map((e) => e.tag)).toEqual(Array(5).fill("McpAuthError"))
    expect(errors.out.every((e) => /invalid_client/.test(e.text) && !e.text.includes(wrong))).toBe(true)
    expect(errors.breaker).toBe("Closed")
  })
})
