/**
 * The demo authorization server and gate, over real HTTP on 127.0.0.1: what a client can get wrong is
 * refused (no token, a bad PKCE verifier, a reused refresh token), and the right flow works.
 */
import { createHash, randomBytes } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DemoAuthServer, protect, startAuthServer } from "./auth.ts"
import { DemoState } from "./DemoServer.ts"
import { serveHttp } from "./http.ts"
import { parseOptions } from "./options.ts"

let as: DemoAuthServer
let demo: Awaited<ReturnType<typeof serveHttp>>
let gated: Awaited<ReturnType<typeof protect>>

beforeAll(async () => {
  as = await startAuthServer({ scopes: ["mcp"] })
  demo = await serveHttp(new DemoState(parseOptions(["--transport", "http"])))
  gated = await protect(demo.http, { authServer: as, requiredScopes: ["mcp"] })
})
afterAll(async () => {
  await gated?.close()
  await demo?.close()
  await as?.close()
})

const form = (body: Record<string, string>) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams(body).toString()
})

describe("demo auth server", () => {
  it("the MCP endpoint refuses a request without a token, naming its metadata; the metadata names the AS", async () => {
    const r = await fetch(gated.url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })
    expect(r.status).toBe(401)
    const prm = new URL("/.well-known/oauth-protected-resource/mcp", gated.url).href
    expect(r.headers.get("www-authenticate")).toContain(`resource_metadata="${prm}"`)
    expect(await (await fetch(prm)).json()).toMatchObject({ resource: gated.url, authorization_servers: [as.issuer] })
  })

  it("registration, PKCE authorization, token, one-time refresh tokens; a wrong verifier is refused", async () => {
    const redirect = "http://127.0.0.1:9/callback"
    const client = await (await fetch(`${as.issuer}/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ redirect_uris: [redirect], token_endpoint_auth_method: "none" })
    })).json() as { client_id: string }
    const verifier = randomBytes(32).toString("base64url")
    const authorize = async () => {
      const url = new URL(`${as.issuer}/authorize`)
      for (const [k, v] of Object.entries({
        response_type: "code", client_id: client.client_id, redirect_uri: redirect, scope: "mcp", resource: gated.url,
        code_challenge: createHash("sha256").update(verifier).digest("base64url"), code_challenge_method: "S256", state: "s"
      })) url.searchParams.set(k, v)
      const back = new URL((await fetch(url, { redirect: "manual" })).headers.get("location")!)
      expect(back.searchParams.get("state")).toBe("s")
      return back.searchParams.get("code")!
    }
    const bad = await fetch(`${as.issuer}/token`, form({ grant_type: "authorization_code", code: await authorize(), code_verifier: "wrong", redirect_uri: redirect, client_id: client.client_id }))
    expect(bad.status).toBe(400)
    const tokens = await (await fetch(`${as.issuer}/token`, form({ grant_type: "authorization_code", code: await authorize(), code_verifier: verifier, redirect_uri: redirect, client_id: client.client_id }))).json() as { access_token: string; refresh_token: string }
    expect((await as.verifyAccessToken(tokens.access_token)).scopes).toEqual(["mcp"])
    const refreshed = await fetch(`${as.issuer}/token`, form({ grant_type: "refresh_token", refresh_token: tokens.refresh_token, client_id: client.client_id }))
    expect(refreshed.status).toBe(200)
    const reused = await fetch(`${as.issuer}/token`, form({ grant_type: "refresh_token", refresh_token: tokens.refresh_token, client_id: client.client_id }))
    expect(reused.status).toBe(400)
    expect(as.stats().reusedRefreshTokens).toBe(1)
    as.expireAccessTokens()
    await expect(as.verifyAccessToken(tokens.access_token)).rejects.toThrow(/expired/)
  })
})
