/**
 * The demo server's auth mode: a small OAuth 2.1 authorization server on 127.0.0.1 (node:http, no
 * framework) and a gate that makes the MCP endpoint a protected resource with the SDK's server-side auth
 * helpers (`verifyBearerToken`, `bearerAuthChallengeResponse`, `oauthMetadataResponse`).
 *
 * The authorization server implements what MCP clients use, and counts it for tests:
 *
 * - metadata (RFC 8414) at `/.well-known/oauth-authorization-server`;
 * - dynamic client registration (RFC 7591) at `/register`;
 * - `/authorize` with PKCE S256 only; the "user" approves at once (a 302 to the redirect URI with `code`
 *   and `state`), so a flow runs offline; the code is bound to the client, the verifier challenge, the
 *   redirect URI and the RFC 8707 `resource`;
 * - `/token`: `authorization_code`, `refresh_token` (rotating: each refresh token works once; a reused one
 *   is `invalid_grant`) and `client_credentials` (`client_secret_basic` or `_post`);
 * - access tokens are opaque, short-lived (`accessTokenTtlSeconds`), scoped and bound to the resource.
 */
import { createHash, randomBytes } from "node:crypto"
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import {
  type AuthInfo,
  bearerAuthChallengeResponse,
  getOAuthProtectedResourceMetadataUrl,
  oauthMetadataResponse,
  OAuthError,
  OAuthErrorCode,
  type OAuthMetadata,
  verifyBearerToken
} from "@modelcontextprotocol/server"

/** Options of {@link startAuthServer}. */
export interface AuthServerOptions {
  /** Port on 127.0.0.1 (default 0: any free port). */
  readonly port?: number
  /** Access token lifetime (default 3600 s). */
  readonly accessTokenTtlSeconds?: number
  /** Scopes the server knows (default `["mcp"]`). */
  readonly scopes?: ReadonlyArray<string>
  /** Pre-registered confidential clients (`client_credentials` or authorization code). */
  readonly clients?: ReadonlyArray<{ readonly clientId: string; readonly clientSecret: string }>
}

/** What the authorization server counted. */
export interface AuthServerStats {
  /** Token requests by grant type, failed ones included. */
  readonly tokenRequests: Record<string, number>
  readonly registrations: number
  readonly authorizations: number
  /** Refresh tokens presented a second time (rotation refused them). */
  readonly reusedRefreshTokens: number
}

/** A running authorization server. */
export interface DemoAuthServer {
  readonly issuer: string
  readonly metadata: OAuthMetadata
  /** Checks an access token for a resource server (the SDK's `OAuthTokenVerifier`). */
  readonly verifyAccessToken: (token: string) => Promise<AuthInfo>
  readonly stats: () => AuthServerStats
  /** Makes every access token issued so far expire now (refresh tokens stay valid). */
  readonly expireAccessTokens: () => void
  readonly close: () => Promise<void>
}

interface Grant {
  readonly clientId: string
  readonly scopes: Array<string>
  readonly resource: string | undefined
}

const random = () => randomBytes(24).toString("base64url")
const s256 = (verifier: string) => createHash("sha256").update(verifier).digest("base64url")

const readBody = async (req: IncomingMessage): Promise<string> => {
  const chunks: Array<Buffer> = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString("utf8")
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers }).end(JSON.stringify(body))

const oauthError = (res: ServerResponse, status: number, error: string, description: string) =>
  json(res, status, { error, error_description: description })

/** Starts the authorization server on 127.0.0.1. */
export const startAuthServer = async (options: AuthServerOptions = {}): Promise<DemoAuthServer> => {
  const ttl = options.accessTokenTtlSeconds ?? 3600
  const scopesSupported = [...(options.scopes ?? ["mcp"])]
  const clients = new Map<string, { secret: string | undefined; redirectUris: Array<string> }>()
  for (const c of options.clients ?? []) clients.set(c.clientId, { secret: c.clientSecret, redirectUris: [] })
  const codes = new Map<string, Grant & { challenge: string; redirectUri: string }>()
  const accessTokens = new Map<string, Grant & { expiresAt: number }>()
  const refreshTokens = new Map<string, Grant>()
  const spentRefreshTokens = new Set<string>()
  const stats = { tokenRequests: {} as Record<string, number>, registrations: 0, authorizations: 0, reusedRefreshTokens: 0 }

  let issuer = ""
  const metadata = (): OAuthMetadata => ({
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    registration_endpoint: `${issuer}/register`,
    response_types_supported: ["code"],
    grant_types_supported: ["authorization_code", "refresh_token", "client_credentials"],
    code_challenge_methods_supported: ["S256"],
    token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "none"],
    scopes_supported: scopesSupported
  })

  const issue = (grant: Grant) => {
    const access = random()
    const refresh = random()
    accessTokens.set(access, { ...grant, expiresAt: Math.floor(Date.now() / 1000) + ttl })
    refreshTokens.set(refresh, grant)
    return {
      access_token: access,
      token_type: "Bearer",
      expires_in: ttl,
      refresh_token: refresh,
      ...(grant.scopes.length > 0 ? { scope: grant.scopes.join(" ") } : {})
    }
  }

  /** The client a token request authenticates as, or an error text. */
  const authenticate = (req: IncomingMessage, form: URLSearchParams): { clientId: string } | string => {
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? "")?.[1]
    const [id, secret] = basic !== undefined
      ? Buffer.from(basic, "base64").toString("utf8").split(":").map((s) => decodeURIComponent(s))
      : [form.get("client_id") ?? undefined, form.get("client_secret") ?? undefined]
    if (id === undefined) return "no client_id"
    const client = clients.get(id)
    if (client === undefined) return "unknown client"
    if (client.secret !== undefined && client.secret !== secret) return "bad client secret"
    return { clientId: id }
  }

  const scopesOf = (raw: string | null) => (raw ?? "").split(" ").filter((s) => s !== "")

  const http: HttpServer = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", issuer)
      if (req.method === "GET" && url.pathname === "/.well-known/oauth-authorization-server") return json(res, 200, metadata())
      if (req.method === "POST" && url.pathname === "/register") {
        const body = JSON.parse(await readBody(req)) as { redirect_uris?: Array<string>; token_endpoint_auth_method?: string }
        stats.registrations++
        const clientId = `client-${random()}`
        const secret = body.token_endpoint_auth_method === "none" ? undefined : random()
        clients.set(clientId, { secret, redirectUris: body.redirect_uris ?? [] })
        return json(res, 201, {
          ...body,
          client_id: clientId,
          client_id_issued_at: Math.floor(Date.now() / 1000),
          ...(secret !== undefined ? { client_secret: secret, client_secret_expires_at: 0 } : {})
        })
      }
      if (req.method === "GET" && url.pathname === "/authorize") {
        const q = url.searchParams
        const client = clients.get(q.get("client_id") ?? "")
        const redirectUri = q.get("redirect_uri") ?? ""
        if (client === undefined) return oauthError(res, 400, "invalid_client", "unknown client")
        if (client.redirectUris.length > 0 && !client.redirectUris.includes(redirectUri)) {
          return oauthError(res, 400, "invalid_request", "redirect_uri not registered")
        }
        if (q.get("code_challenge_method") !== "S256" || !q.get("code_challenge")) {
          return oauthError(res, 400, "invalid_request", "PKCE S256 is required")
        }
        stats.authorizations++
        const code = random()
        codes.set(code, {
          clientId: q.get("client_id")!,
          scopes: scopesOf(q.get("scope")),
          resource: q.get("resource") ?? undefined,
          challenge: q.get("code_challenge")!,
          redirectUri
        })
        const back = new URL(redirectUri)
        back.searchParams.set("code", code)
        if (q.get("state") !== null) back.searchParams.set("state", q.get("state")!)
        back.searchParams.set("iss", issuer)
        res.writeHead(302, { location: back.href }).end()
        return
      }
      if (req.method === "POST" && url.pathname === "/token") {
        const form = new URLSearchParams(await readBody(req))
        const grantType = form.get("grant_type") ?? "none"
        stats.tokenRequests[grantType] = (stats.tokenRequests[grantType] ?? 0) + 1
        const client = authenticate(req, form)
        if (typeof client === "string") return oauthError(res, 401, "invalid_client", client)
        if (grantType === "authorization_code") {
          const grant = codes.get(form.get("code") ?? "")
          codes.delete(form.get("code") ?? "")
          if (grant === undefined || grant.clientId !== client.clientId) return oauthError(res, 400, "invalid_grant", "unknown code")
          if (s256(form.get("code_verifier") ?? "") !== grant.challenge) return oauthError(res, 400, "invalid_grant", "PKCE verification failed")
          if ((form.get("redirect_uri") ?? "") !== grant.redirectUri) return oauthError(res, 400, "invalid_grant", "redirect_uri mismatch")
          return json(res, 200, issue(grant))
        }
        if (grantType === "refresh_token") {
          const token = form.get("refresh_token") ?? ""
          const grant = refreshTokens.get(token)
          if (grant === undefined || grant.clientId !== client.clientId) {
            if (spentRefreshTokens.has(token)) stats.reusedRefreshTokens++
            return oauthError(res, 400, "invalid_grant", "refresh token is invalid or was already used")
          }
          refreshTokens.delete(token)
          spentRefreshTokens.add(token)
          return json(res, 200, issue(grant))
        }
        if (grantType === "client_credentials") {
          const requested = scopesOf(form.get("scope"))
          return json(res, 200, issue({
            clientId: client.clientId,
            scopes: requested.length > 0 ? requested : scopesSupported,
            resource: form.get("resource") ?? undefined
          }))
        }
        return oauthError(res, 400, "unsupported_grant_type", grantType)
      }
      res.writeHead(404).end("not found")
    } catch (e) {
      if (!res.headersSent) oauthError(res, 500, "server_error", String(e))
    }
  })
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject)
    http.listen(options.port ?? 0, "127.0.0.1", () => resolve())
  })
  issuer = `http://127.0.0.1:${(http.address() as AddressInfo).port}`

  return {
    issuer,
    metadata: metadata(),
    verifyAccessToken: async (token) => {
      const grant = accessTokens.get(token)
      if (grant === undefined || grant.expiresAt <= Math.floor(Date.now() / 1000)) {
        throw new OAuthError(OAuthErrorCode.InvalidToken, "the access token is unknown or expired")
      }
      return {
        token,
        clientId: grant.clientId,
        scopes: grant.scopes,
        expiresAt: grant.expiresAt,
        ...(grant.resource !== undefined ? { resource: new URL(grant.resource) } : {})
      }
    },
    stats: () => ({ ...stats, tokenRequests: { ...stats.tokenRequests } }),
    expireAccessTokens: () => {
      for (const [k, v] of accessTokens) accessTokens.set(k, { ...v, expiresAt: 0 })
    },
    close: async () => {
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    }
  }
}

/** Options of {@link authGate}. */
export interface AuthGateOptions {
  readonly authServer: Pick<DemoAuthServer, "metadata" | "verifyAccessToken">
  /** The MCP endpoint's public URL (the protected resource, RFC 8707/9728). */
  readonly resourceUrl: URL
  /** Scopes every MCP request needs (default none); missing ones answer `403 insufficient_scope`. */
  readonly requiredScopes?: ReadonlyArray<string>
}

/**
 * A gate in front of the MCP endpoint: serves the protected resource metadata (RFC 9728) and refuses a
 * request without a valid token with the SDK's `WWW-Authenticate` challenge. Resolves `true` when it
 * answered the request itself.
 */
export const authGate = (options: AuthGateOptions) => {
  const metadataOptions = { oauthMetadata: options.authServer.metadata, resourceServerUrl: options.resourceUrl }
  const resourceMetadataUrl = getOAuthProtectedResourceMetadataUrl(options.resourceUrl)
  const send = async (res: ServerResponse, response: Response) => {
    const headers: Record<string, string> = {}
    response.headers.forEach((v, k) => {
      headers[k] = v
    })
    res.writeHead(response.status, headers).end(await response.text())
  }
  return async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> => {
    if (url.pathname.startsWith("/.well-known/")) {
      const answer = oauthMetadataResponse(new Request(new URL(url.pathname, options.resourceUrl), { method: req.method ?? "GET" }), metadataOptions)
      if (answer !== undefined) {
        await send(res, answer)
        return true
      }
      return false
    }
    try {
      await verifyBearerToken(req.headers.authorization, {
        verifier: { verifyAccessToken: options.authServer.verifyAccessToken },
        resourceMetadataUrl,
        expectedResource: options.resourceUrl,
        ...(options.requiredScopes !== undefined ? { requiredScopes: [...options.requiredScopes] } : {})
      })
      return false
    } catch (error) {
      await send(res, bearerAuthChallengeResponse(error, {
        resourceMetadataUrl,
        ...(options.requiredScopes !== undefined ? { requiredScopes: [...options.requiredScopes] } : {})
      }))
      return true
    }
  }
}

/** A protected MCP endpoint in front of a demo HTTP server. */
export interface ProtectedServer {
  /** The protected MCP endpoint, `http://127.0.0.1:<port>/mcp`. */
  readonly url: string
  readonly close: () => Promise<void>
}

/**
 * Puts {@link authGate} in front of a running demo HTTP server (`inner`, from `serveHttp`): a server on
 * 127.0.0.1 that answers discovery and refuses unauthenticated requests, and hands every other request to
 * `inner`'s own request handler, unchanged.
 */
export const protect = async (
  inner: HttpServer,
  options: Omit<AuthGateOptions, "resourceUrl"> & {
    /** Sees every request before the gate (tests record headers with it). */
    readonly onRequest?: (req: IncomingMessage) => void
  }
): Promise<ProtectedServer> => {
  let gate: ((req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>) | undefined
  const front = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", "http://127.0.0.1")
      options.onRequest?.(req)
      if (await gate!(req, res, url)) return
      inner.emit("request", req, res)
    } catch (e) {
      if (!res.headersSent) res.writeHead(500).end(String(e))
    }
  })
  await new Promise<void>((resolve, reject) => {
    front.once("error", reject)
    front.listen(0, "127.0.0.1", () => resolve())
  })
  const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}/mcp`
  gate = authGate({ ...options, resourceUrl: new URL(url) })
  return {
    url,
    close: async () => {
      front.closeAllConnections()
      await new Promise<void>((resolve) => front.close(() => resolve()))
    }
  }
}
