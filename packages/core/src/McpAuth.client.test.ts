/**
 * McpAuth inside McpClient: the auth fetch keeps Keel's transport features (the config's headers still
 * reach the server, next to the token; a dead server is still a typed McpClosedError, not an auth error),
 * and the KeyValueStore token store. Real demo server behind the SDK's bearer-auth helpers, real
 * authorization server on 127.0.0.1.
 */
import { DemoState, parseOptions, serveHttp } from "@keel/demo-server"
import { protect, startAuthServer } from "@keel/demo-server/auth"
import { Effect, Layer, Schema } from "effect"
import { KeyValueStore } from "effect/persistence"
import type { IncomingHttpHeaders } from "node:http"
import { describe, expect, it } from "vitest"
import * as McpAuth from "./McpAuth.ts"
import { McpClient } from "./McpClient.ts"

const decode = Schema.decodeUnknownSync(McpAuth.AuthConfig)
const secret = Schema.decodeSync(Schema.RedactedFromValue(Schema.String))

describe("McpAuth in McpClient", () => {
  it("config headers reach the server next to the token; a server that dies is McpClosedError, not an auth error", async () => {
    const authServer = await startAuthServer({ clients: [{ clientId: "machine", clientSecret: "client-secret" }] })
    const demo = await serveHttp(new DemoState(parseOptions(["--transport", "http", "--protocol-version", "2025-11-25"])))
    const seen: Array<IncomingHttpHeaders> = []
    const gated = await protect(demo.http, { authServer, onRequest: (req) => seen.push(req.headers) })
    const stop = async () => {
      await gated.close()
      await demo.close()
      await authServer.close()
    }
    try {
      const registry = McpAuth.makeWith(await Effect.runPromise(Effect.service(McpAuth.TokenStore).pipe(Effect.provide(McpAuth.TokenStore.layerMemory))))
      const state = registry.forServer("cc", gated.url, decode({ type: "client_credentials", clientId: "machine", clientSecret: "client-secret", expectedIssuer: authServer.issuer }))
      const outcome = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const client = yield* McpClient.connect(
          "cc",
          { type: "http", url: gated.url, headers: { "X-Keel-Test": secret("kept") } },
          { auth: state, settings: { protocolVersion: "legacy" } }
        )
        const echo = yield* client.callTool("echo", { message: "with token" })
        yield* Effect.promise(stop)
        const dead = yield* Effect.flip(client.callTool("echo", { message: "after death" }, { timeout: "5 seconds" }))
        return { echo: echo.content[0], dead: dead._tag }
      })))
      expect(outcome.echo).toEqual({ type: "text", text: "with token" })
      expect(outcome.dead).toBe("McpClosedError")
      const token = (await state.provider.tokens())!.access_token
      const authed = seen.filter((h) => h.authorization === `Bearer ${token}`)
      expect(authed.length).toBeGreaterThan(0)
      expect(authed.every((h) => h["x-keel-test"] === "kept")).toBe(true)
    } finally {
      await stop().catch(() => {})
    }
  })

  it("TokenStore.layerKeyValueStore keeps one JSON value per server under its prefix", async () => {
    const kv = await Effect.runPromise(Effect.service(KeyValueStore.KeyValueStore).pipe(Effect.provide(KeyValueStore.layerMemory)))
    const store = await Effect.runPromise(Effect.service(McpAuth.TokenStore).pipe(
      Effect.provide(McpAuth.TokenStore.layerKeyValueStore("t/").pipe(Layer.provide(Layer.succeed(KeyValueStore.KeyValueStore, kv))))
    ))
    await Effect.runPromise(store.set("docs", { url: "http://x/mcp", tokens: { access_token: "a", token_type: "Bearer" } }))
    expect(await Effect.runPromise(store.get("docs"))).toEqual({ url: "http://x/mcp", tokens: { access_token: "a", token_type: "Bearer" } })
    expect(await Effect.runPromise(kv.keys)).toEqual(["t/docs"])
    await Effect.runPromise(store.remove("docs"))
    expect(await Effect.runPromise(store.get("docs"))).toBeUndefined()
  })
})
