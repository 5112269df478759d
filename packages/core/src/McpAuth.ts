/**
 * `McpAuth`: OAuth 2.1 and client credentials for remote MCP servers, through the SDK's own auth machinery
 * (`auth()`, discovery, dynamic client registration, client ID metadata documents, PKCE, RFC 8707
 * `resource`, refresh, scope step-up, `ClientCredentialsProvider`, `PrivateKeyJwtProvider`,
 * `StaticPrivateKeyJwtProvider`, `CrossAppAccessProvider`). Keel adds what a pool of sessions needs:
 *
 * - **One auth state per server**, shared by every pooled session: one provider, one token set. A new
 *   session starts with the tokens the others already have, so a pool of N sessions costs one token request.
 * - **Single-flight recovery.** On a 401 the session's request waits for the one recovery in flight (a
 *   refresh, or a new client-credentials grant), then is retried once. A session whose token was already
 *   replaced by another session's recovery just retries with the new one; rotating (single-use) refresh
 *   tokens are therefore spent exactly once. A 403 `insufficient_scope` runs one step-up (the union of the
 *   scopes asked so far and the challenged ones) and retries once; a second 401/403 is final.
 * - **Token storage as a service** ({@link TokenStore}): in memory by default, a JSON file that survives a
 *   restart ({@link TokenStore.layerFile}), or any Effect `KeyValueStore` ({@link TokenStore.layerKeyValueStore}).
 * - **Interactive flows as values.** When a user must authorise, connects and calls fail with
 *   {@link AuthorizationRequiredError} carrying the server and the authorization URL; {@link McpAuthShape.finishAuth}
 *   (or `McpClientManager`'s `finishAuth`) redeems the code, and later calls go through with nothing restarted.
 * - **Secrets stay secret.** Client secrets, private keys, ID tokens and assertions are `Redacted` in the
 *   config; access and refresh tokens never appear in an error message, a log line or a metric label.
 *
 * The auth fetch wraps Keel's own crash-detecting fetch (so a dead server is still detected) and the
 * config's `headers` still apply; the `Authorization` header is the token's.
 *
 * ```ts
 * import { Effect } from "effect"
 * import { McpAuth, McpClientManager } from "@keel/core"
 *
 * const config = {
 *   mcpServers: {
 *     docs: { url: "https://docs.example.com/mcp", auth: { type: "oauth", scopes: ["docs.read"] } }
 *   }
 * }
 * const program = Effect.gen(function*() {
 *   const mcp = yield* McpClientManager
 *   yield* mcp.listTools("docs").pipe(
 *     Effect.catchTag("AuthorizationRequiredError", (e) => Effect.log(`open ${e.authorizationUrl}`))
 *     // ... later, from the redirect handler: mcp.finishAuth("docs", callbackUrl)
 *   )
 * }).pipe(
 *   Effect.provide(McpClientManager.layerConfig(config)),
 *   Effect.provide(McpAuth.layerFile(".keel-tokens.json")) // tokens survive a restart
 * )
 * ```
 *
 * @since 0.3.0
 */
import {
  type AuthProvider,
  auth as sdkAuth,
  ClientCredentialsProvider,
  computeScopeUnion,
  CrossAppAccessProvider,
  discoverAndRequestJwtAuthGrant,
  DpopSession,
  extractWWWAuthenticateParams,
  type FetchLike,
  InsufficientScopeError,
  isStrictScopeSuperset,
  type OAuthClientInformationMixed,
  type OAuthClientMetadata,
  type OAuthClientProvider,
  type OAuthDiscoveryState,
  OAuthError,
  type OAuthTokens,
  PrivateKeyJwtProvider,
  requestJwtAuthorizationGrant,
  SdkHttpError,
  StaticPrivateKeyJwtProvider,
  UnauthorizedError,
  withDpopFromProvider
} from "@modelcontextprotocol/client"
import { createHash } from "node:crypto"
import { mkdir, readFile, rename, writeFile } from "node:fs/promises"
import { dirname } from "node:path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Semaphore from "effect/Semaphore"
import type * as KeyValueStore from "effect/persistence/KeyValueStore"
import { markUncounted } from "./CircuitBreaker.ts"
import { AuthorizationRequiredError, McpAuthError } from "./McpError.ts"

export { AuthorizationRequiredError, McpAuthError } from "./McpError.ts"

// ---------------------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------------------

const Secret = Schema.RedactedFromValue(Schema.String)
const Scopes = Schema.Array(Schema.NonEmptyString)

/**
 * Authorization code with PKCE (an interactive user login), the MCP authorization spec's main flow.
 *
 * - `clientId` (+ `clientSecret`): a client registered beforehand with the authorization server. Without
 *   it the client registers itself: with `clientMetadataUrl` (a client ID metadata document, an https URL)
 *   when the server supports that, otherwise by dynamic client registration (the registration is stored
 *   with the tokens, so it is reused after a restart).
 * - `redirectUrl` (default `http://127.0.0.1:8976/callback`): where the authorization server sends the
 *   user back with the `code`; your app reads the `code` there and calls `finishAuth`.
 * - `scopes`: what to ask for; default: what the server's `WWW-Authenticate` challenge or metadata names.
 * - `clientName` (default `keel`): the name shown to the user on the consent screen.
 * - `tokenEndpointAuthMethod`: how a registered client authenticates at the token endpoint; default: the
 *   SDK picks from what the server supports.
 *
 * @since 0.3.0
 * @category config
 */
export const AuthorizationCodeAuth = Schema.Struct({
  type: Schema.Literal("oauth"),
  clientId: Schema.optionalKey(Schema.NonEmptyString),
  clientSecret: Schema.optionalKey(Secret),
  clientMetadataUrl: Schema.optionalKey(Schema.NonEmptyString),
  redirectUrl: Schema.optionalKey(Schema.NonEmptyString),
  scopes: Schema.optionalKey(Scopes),
  clientName: Schema.optionalKey(Schema.NonEmptyString),
  tokenEndpointAuthMethod: Schema.optionalKey(Schema.Literals(["client_secret_basic", "client_secret_post", "none"])),
  dpop: Schema.optionalKey(Schema.Boolean)
})

/** @since 0.3.0 @category config */
export type AuthorizationCodeAuth = typeof AuthorizationCodeAuth.Type

/**
 * The `client_credentials` grant (machine to machine, no user). Exactly one way to authenticate the client:
 *
 * - `clientSecret`: `client_secret_basic`;
 * - `privateKey` (PEM) with `algorithm` (default `RS256`): `private_key_jwt`, a fresh signed assertion per
 *   token request (RFC 7523);
 * - `assertion`: a JWT client assertion made elsewhere, used as is.
 *
 * `expectedIssuer` (recommended) binds the credentials to one authorization server: they are never sent
 * to another one the MCP server might name.
 *
 * @since 0.3.0
 * @category config
 */
export const ClientCredentialsAuth = Schema.Struct({
  type: Schema.Literal("client_credentials"),
  clientId: Schema.NonEmptyString,
  clientSecret: Schema.optionalKey(Secret),
  privateKey: Schema.optionalKey(Secret),
  algorithm: Schema.optionalKey(Schema.NonEmptyString),
  assertion: Schema.optionalKey(Secret),
  scopes: Schema.optionalKey(Scopes),
  expectedIssuer: Schema.optionalKey(Schema.NonEmptyString),
  dpop: Schema.optionalKey(Schema.Boolean)
}).check(Schema.makeFilter((c) => {
  const ways = [c.clientSecret, c.privateKey, c.assertion].filter((x) => x !== undefined).length
  return ways === 1 ? undefined : "needs exactly one of clientSecret, privateKey or assertion"
}))

/** @since 0.3.0 @category config */
export type ClientCredentialsAuth = typeof ClientCredentialsAuth.Type

/**
 * Cross-app access (enterprise-managed authorization, SEP-990): the user's ID token from the enterprise
 * IdP is exchanged at the IdP for a JWT authorization grant (RFC 8693), which the MCP server's
 * authorization server turns into an access token (RFC 7523).
 *
 * - `clientId` / `clientSecret`: the client at the MCP server's authorization server;
 * - `idpUrl` (the IdP's issuer, for discovery) or `idpTokenEndpoint`; `idpClientId` / `idpClientSecret`:
 *   the client at the IdP;
 * - `idToken`: the user's ID token.
 *
 * @since 0.3.0
 * @category config
 */
export const CrossAppAccessAuth = Schema.Struct({
  type: Schema.Literal("cross_app_access"),
  clientId: Schema.NonEmptyString,
  clientSecret: Secret,
  idpUrl: Schema.optionalKey(Schema.NonEmptyString),
  idpTokenEndpoint: Schema.optionalKey(Schema.NonEmptyString),
  idpClientId: Schema.NonEmptyString,
  idpClientSecret: Schema.optionalKey(Secret),
  idToken: Secret,
  scopes: Schema.optionalKey(Scopes),
  expectedIssuer: Schema.optionalKey(Schema.NonEmptyString),
  dpop: Schema.optionalKey(Schema.Boolean)
}).check(Schema.makeFilter((c) =>
  c.idpUrl !== undefined || c.idpTokenEndpoint !== undefined ? undefined : "needs idpUrl or idpTokenEndpoint"
))

/** @since 0.3.0 @category config */
export type CrossAppAccessAuth = typeof CrossAppAccessAuth.Type

/**
 * The JWT bearer grant (RFC 7523 §2.1) with a workload identity token (workload identity federation,
 * SEP-1933): a JWT the platform issued to this workload (`assertion`) is exchanged for an access token;
 * there is no client secret.
 *
 * @since 0.3.0
 * @category config
 */
export const JwtBearerAuth = Schema.Struct({
  type: Schema.Literal("jwt_bearer"),
  clientId: Schema.NonEmptyString,
  assertion: Secret,
  scopes: Schema.optionalKey(Scopes),
  expectedIssuer: Schema.optionalKey(Schema.NonEmptyString),
  dpop: Schema.optionalKey(Schema.Boolean)
})

/** @since 0.3.0 @category config */
export type JwtBearerAuth = typeof JwtBearerAuth.Type

/**
 * A server's `auth` section: `type` picks the flow (`oauth`, `client_credentials`, `cross_app_access`,
 * `jwt_bearer`). Every type takes `dpop: true` for DPoP sender-constrained tokens (RFC 9449; default
 * `false`, plain Bearer tokens); the DPoP key lives in memory, so a DPoP-bound token does not outlive the
 * process.
 *
 * @since 0.3.0
 * @category config
 */
export const AuthConfig = Schema.Union([AuthorizationCodeAuth, ClientCredentialsAuth, CrossAppAccessAuth, JwtBearerAuth])

/** @since 0.3.0 @category config */
export type AuthConfig = typeof AuthConfig.Type

/** The default redirect URL of the authorization code flow. @since 0.3.0 @category config */
export const DEFAULT_REDIRECT_URL = "http://127.0.0.1:8976/callback"

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/**
 * The token store could not read or write.
 *
 * @since 0.3.0
 * @category errors
 */
export class TokenStoreError extends Schema.TaggedError<TokenStoreError>()("TokenStoreError", {
  message: Schema.String
}) {}

// ---------------------------------------------------------------------------------------------------------
// TokenStore
// ---------------------------------------------------------------------------------------------------------

/**
 * What is stored per server: the tokens, the client registration (dynamic registration), the PKCE verifier
 * of an authorization in progress and the discovery state, plus the URL they belong to (tokens are only
 * ever sent to that server). A plain JSON value; it holds secrets, so a store must keep it private.
 *
 * @since 0.3.0
 * @category models
 */
export interface StoredAuth {
  readonly url: string
  readonly tokens?: OAuthTokens | undefined
  readonly clientInformation?: OAuthClientInformationMixed | undefined
  readonly codeVerifier?: string | undefined
  readonly discoveryState?: OAuthDiscoveryState | undefined
}

/**
 * The token store's operations, keyed by server name.
 *
 * @since 0.3.0
 * @category models
 */
export interface TokenStoreShape {
  readonly get: (server: string) => Effect.Effect<StoredAuth | undefined, TokenStoreError>
  readonly set: (server: string, value: StoredAuth) => Effect.Effect<void, TokenStoreError>
  readonly remove: (server: string) => Effect.Effect<void, TokenStoreError>
}

/** A store kept in a Map (the default). */
const memoryStore = (): TokenStoreShape => {
  const map = new Map<string, StoredAuth>()
  return {
    get: (server) => Effect.sync(() => map.get(server)),
    set: (server, value) => Effect.sync(() => void map.set(server, value)),
    remove: (server) => Effect.sync(() => void map.delete(server))
  }
}

const storeError = (what: string, path: string) => (e: unknown) =>
  new TokenStoreError({ message: `token store ${path}: could not ${what}: ${(e as { code?: string }).code ?? "error"}` })

/** A store in one JSON file (mode 0600), rewritten atomically (temp file + rename), writes serialised. */
const fileStore = (path: string): Effect.Effect<TokenStoreShape> =>
  Effect.map(Semaphore.make(1), (lock) => {
    const read = Effect.tryPromise({
      try: async () => {
        try {
          return JSON.parse(await readFile(path, "utf8")) as { servers?: Record<string, StoredAuth> }
        } catch (e) {
          if ((e as { code?: string }).code === "ENOENT") return {}
          throw e
        }
      },
      catch: storeError("read", path)
    })
    const write = (data: { servers: Record<string, StoredAuth> }) =>
      Effect.tryPromise({
        try: async () => {
          await mkdir(dirname(path), { recursive: true })
          const tmp = `${path}.${process.pid}.tmp`
          await writeFile(tmp, JSON.stringify({ version: 1, ...data }), { mode: 0o600 })
          await rename(tmp, path)
        },
        catch: storeError("write", path)
      })
    const update = (f: (servers: Record<string, StoredAuth>) => void) =>
      lock.withPermits(1)(Effect.flatMap(read, (data) => {
        const servers = { ...data.servers }
        f(servers)
        return write({ servers })
      }))
    return {
      get: (server) => Effect.map(read, (data) => data.servers?.[server]),
      set: (server, value) => update((s) => void (s[server] = value)),
      remove: (server) => update((s) => void delete s[server])
    }
  })

/**
 * Where tokens live, keyed by server name. Implementations: {@link TokenStore.layerMemory} (the default of
 * {@link McpAuth}), {@link TokenStore.layerFile} (survives a restart) and
 * {@link TokenStore.layerKeyValueStore} (any Effect `KeyValueStore`: file system, SQL, ...); or provide
 * your own `TokenStoreShape` (a vault, Redis).
 *
 * @since 0.3.0
 * @category services
 */
export class TokenStore extends Context.Service<TokenStore, TokenStoreShape>()("@keel/core/TokenStore") {
  /** A store in memory: tokens last as long as the process. */
  static readonly layerMemory: Layer.Layer<TokenStore> = Layer.sync(TokenStore, memoryStore)
  /** A store in one JSON file, created with mode 0600 (owner only), rewritten atomically. */
  static readonly layerFile = (path: string): Layer.Layer<TokenStore> => Layer.effect(TokenStore, fileStore(path))
  /** A store over Effect's `KeyValueStore`, one key per server under `prefix` (default `keel/auth/`). */
  static readonly layerKeyValueStore = (prefix = "keel/auth/"): Layer.Layer<TokenStore, never, KeyValueStore.KeyValueStore> =>
    Layer.effect(
      TokenStore,
      // Effect's KeyValueStore is loaded when this layer is built, not when `@keel/core` is imported.
      Effect.flatMap(Effect.promise(() => import("effect/persistence/KeyValueStore")), (KeyValueStore) =>
        Effect.map(Effect.service(KeyValueStore.KeyValueStore), (kv): TokenStoreShape => {
          const wrap = (what: string) => (e: unknown) =>
            new TokenStoreError({ message: `token store (KeyValueStore): could not ${what}: ${(e as { _tag?: string })._tag ?? "error"}` })
          return {
            get: (server) =>
              kv.get(prefix + server).pipe(
                Effect.map((s) => (s === undefined ? undefined : JSON.parse(s) as StoredAuth)),
                Effect.mapError(wrap("read"))
              ),
            set: (server, value) => Effect.mapError(kv.set(prefix + server, JSON.stringify(value)), wrap("write")),
            remove: (server) => Effect.mapError(kv.remove(prefix + server), wrap("remove"))
          }
        }))
    )
}

// ---------------------------------------------------------------------------------------------------------
// One server's shared auth state
// ---------------------------------------------------------------------------------------------------------

/**
 * What `McpClient` needs from the auth state of the server it connects to: the transport's options (the
 * auth provider and the auth fetch wrapped around Keel's own fetch) and the typed error for a failure.
 *
 * @since 0.3.0
 * @category models
 */
export interface SessionAuth {
  /** `authProvider` and `fetch` for the SDK transport; `base` is Keel's crash-detecting fetch. */
  readonly transportOptions: (base: FetchLike) => { readonly authProvider: AuthProvider; readonly fetch: FetchLike }
  /** The typed auth error for a failed connect or call, or `undefined` when the failure is not about auth. */
  readonly toError: (error: unknown) => AuthorizationRequiredError | McpAuthError | undefined
}

/**
 * One server's auth state, shared by all its sessions.
 *
 * @since 0.3.0
 * @category models
 */
export interface ServerAuth extends SessionAuth {
  readonly server: string
  readonly url: string
  /** The authorization URL a user must visit, while an interactive authorization is pending. */
  readonly pendingAuthorizationUrl: () => string | undefined
  /** Redeems the authorization code (or the whole callback query, for the RFC 9207 `iss` check). */
  readonly finishAuth: (callback: string | URL | URLSearchParams) => Effect.Effect<void, McpAuthError>
  /** Forgets the server's tokens (and registration), here and in the store. */
  readonly logout: Effect.Effect<void, McpAuthError>
  /** The SDK provider behind this state, for advanced use (read-only; tokens come from the store). */
  readonly provider: OAuthClientProvider
}

const reveal = <A>(r: Redacted.Redacted<A> | undefined): A | undefined => (r === undefined ? undefined : Redacted.value(r))
const scopeOf = (scopes: ReadonlyArray<string> | undefined) => (scopes === undefined || scopes.length === 0 ? undefined : scopes.join(" "))

const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"

/** The JWT bearer grant as an SDK provider (the SDK has none): the assertion is the grant itself. */
const jwtBearerProvider = (config: JwtBearerAuth): OAuthClientProvider => ({
  redirectUrl: undefined,
  clientMetadata: { client_name: "keel", redirect_uris: [], grant_types: [JWT_BEARER], token_endpoint_auth_method: "none" },
  clientInformation: () => ({
    client_id: config.clientId,
    ...(config.expectedIssuer !== undefined ? { issuer: config.expectedIssuer } : {})
  }),
  tokens: () => undefined,
  saveTokens: () => {},
  redirectToAuthorization: () => {
    throw new UnauthorizedError("the jwt_bearer flow has no user authorization step")
  },
  saveCodeVerifier: () => {},
  codeVerifier: () => "",
  prepareTokenRequest: (scope) => {
    const params = new URLSearchParams({ grant_type: JWT_BEARER, assertion: Redacted.value(config.assertion) })
    const wanted = scope ?? scopeOf(config.scopes)
    if (wanted !== undefined) params.set("scope", wanted)
    return params
  }
})

/** The SDK provider for the machine flows; the interactive flow has none (Keel's provider is the whole of it). */
const innerProvider = (config: AuthConfig): OAuthClientProvider | undefined => {
  switch (config.type) {
    case "oauth":
      return undefined
    case "client_credentials": {
      const common = {
        clientId: config.clientId,
        ...(scopeOf(config.scopes) !== undefined ? { scope: scopeOf(config.scopes)! } : {}),
        ...(config.expectedIssuer !== undefined ? { expectedIssuer: config.expectedIssuer } : {})
      }
      if (config.privateKey !== undefined) {
        return new PrivateKeyJwtProvider({ ...common, privateKey: Redacted.value(config.privateKey), algorithm: config.algorithm ?? "RS256" })
      }
      if (config.assertion !== undefined) {
        return new StaticPrivateKeyJwtProvider({ ...common, jwtBearerAssertion: Redacted.value(config.assertion) })
      }
      return new ClientCredentialsProvider({ ...common, clientSecret: reveal(config.clientSecret)! })
    }
    case "jwt_bearer":
      return jwtBearerProvider(config)
    case "cross_app_access":
      return new CrossAppAccessProvider({
        clientId: config.clientId,
        clientSecret: Redacted.value(config.clientSecret),
        ...(config.expectedIssuer !== undefined ? { expectedIssuer: config.expectedIssuer } : {}),
        assertion: async (ctx) => {
          const common = {
            audience: ctx.authorizationServerUrl,
            resource: ctx.resourceUrl,
            idToken: Redacted.value(config.idToken),
            clientId: config.idpClientId,
            ...(config.idpClientSecret !== undefined ? { clientSecret: Redacted.value(config.idpClientSecret) } : {}),
            ...(ctx.scope !== undefined ? { scope: ctx.scope } : scopeOf(config.scopes) !== undefined ? { scope: scopeOf(config.scopes)! } : {}),
            fetchFn: ctx.fetchFn
          }
          const grant = config.idpTokenEndpoint !== undefined
            ? await requestJwtAuthorizationGrant({ ...common, tokenEndpoint: config.idpTokenEndpoint })
            : await discoverAndRequestJwtAuthGrant({ ...common, idpUrl: config.idpUrl! })
          return grant.jwtAuthGrant
        }
      })
  }
}

/** The text of an auth failure, safe to show: an OAuth error code and description, never a token. */
const failureText = (e: unknown): string => {
  if (e instanceof OAuthError) return `${e.code}${e.message ? `: ${e.message}` : ""}`
  if (e instanceof InsufficientScopeError) return `insufficient scope${e.requiredScope !== undefined ? ` (needs ${e.requiredScope})` : ""}`
  if (e instanceof Error) return e.message
  return String(e)
}

const statusOf = (e: unknown): number | undefined => {
  if (e instanceof SdkHttpError) return (e.data as { status?: number } | undefined)?.status
  if (e instanceof InsufficientScopeError) return 403
  if (e instanceof UnauthorizedError) return 401
  return undefined
}

/** Whether `e` (or an error in its `cause` chain) is one of the SDK's auth failures. */
const isAuthFailure = (e: unknown, depth = 0): boolean => {
  if (depth > 4 || typeof e !== "object" || e === null) return false
  if (e instanceof UnauthorizedError || e instanceof InsufficientScopeError || e instanceof OAuthError) return true
  const status = statusOf(e)
  if (status === 401 || status === 403) return true
  return isAuthFailure((e as { cause?: unknown }).cause, depth + 1)
}

/** Effect's runtime for the store's effects, from the provider's Promise world. */
const run = <A>(effect: Effect.Effect<A, TokenStoreError>): Promise<A> => Effect.runPromise(effect)

/**
 * Builds a server's shared auth state. `store` keeps its tokens; `url` is the MCP endpoint (tokens from
 * the store that belong to another URL are ignored).
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeServerAuth = (server: string, url: string, config: AuthConfig, store: TokenStoreShape): ServerAuth => {
  const inner = innerProvider(config)
  const serverUrl = new URL(url)
  let stored: StoredAuth = { url }
  let loaded: Promise<void> | undefined
  let pendingUrl: string | undefined
  let requestedScope: string | undefined = scopeOf(config.type === "oauth" ? config.scopes : undefined)
  let resourceMetadataUrl: URL | undefined
  let inflight: Promise<boolean> | undefined
  let lastFailure: unknown
  let dpopSession: Promise<DpopSession> | undefined

  const load = () =>
    (loaded ??= run(store.get(server)).then((s) => {
      if (s !== undefined && s.url === url) stored = s
    }, (e: unknown) => {
      loaded = undefined
      throw e
    }))
  // Writes are chained, and each writes the state as it is when it runs: the store never goes back to an
  // older state when two saves race.
  let writing: Promise<void> = Promise.resolve()
  const save = async (patch: Partial<StoredAuth>) => {
    await load()
    stored = { ...stored, ...patch, url }
    const write = writing.catch(() => {}).then(() => run(store.set(server, stored)))
    writing = write
    await write
  }

  const oauth = config.type === "oauth" ? config : undefined
  const redirectUrl = oauth !== undefined ? (oauth.redirectUrl ?? DEFAULT_REDIRECT_URL) : undefined
  const preRegistered: OAuthClientInformationMixed | undefined = oauth?.clientId !== undefined
    ? { client_id: oauth.clientId, ...(oauth.clientSecret !== undefined ? { client_secret: Redacted.value(oauth.clientSecret) } : {}) }
    : undefined

  // Keel's provider: tokens, registration, verifier and discovery go to the store; the grant-specific parts
  // of the machine flows are the SDK providers' own.
  const provider: OAuthClientProvider = {
    get redirectUrl() {
      return redirectUrl
    },
    ...(oauth?.clientMetadataUrl !== undefined ? { clientMetadataUrl: oauth.clientMetadataUrl } : {}),
    get clientMetadata(): OAuthClientMetadata {
      if (inner !== undefined) return inner.clientMetadata
      return {
        client_name: oauth?.clientName ?? "keel",
        redirect_uris: [redirectUrl!],
        ...(requestedScope !== undefined ? { scope: requestedScope } : {}),
        ...(oauth?.tokenEndpointAuthMethod !== undefined ? { token_endpoint_auth_method: oauth.tokenEndpointAuthMethod } : {})
      }
    },
    clientInformation: async (ctx) => {
      if (inner !== undefined) return inner.clientInformation(ctx)
      if (preRegistered !== undefined) return preRegistered
      await load()
      return stored.clientInformation
    },
    ...(inner === undefined && preRegistered === undefined
      ? { saveClientInformation: (info: OAuthClientInformationMixed) => save({ clientInformation: info }) }
      : {}),
    tokens: async () => {
      await load()
      return stored.tokens
    },
    saveTokens: async (tokens) => {
      await save({ tokens })
      inner?.saveTokens(tokens)
    },
    redirectToAuthorization: (authorizationUrl) => {
      if (inner !== undefined) return inner.redirectToAuthorization(authorizationUrl)
      pendingUrl = authorizationUrl.href
    },
    saveCodeVerifier: (verifier) => save({ codeVerifier: verifier }),
    codeVerifier: async () => {
      await load()
      if (stored.codeVerifier === undefined) throw new UnauthorizedError("no authorization in progress (no PKCE code verifier)")
      return stored.codeVerifier
    },
    saveDiscoveryState: (state) => save({ discoveryState: state }),
    discoveryState: async () => {
      await load()
      return stored.discoveryState
    },
    invalidateCredentials: async (scope) => {
      if (scope === "all") await save({ tokens: undefined, clientInformation: undefined, codeVerifier: undefined, discoveryState: undefined })
      else if (scope === "tokens") await save({ tokens: undefined })
      else if (scope === "client") await save({ clientInformation: undefined })
      else if (scope === "verifier") await save({ codeVerifier: undefined })
      else if (scope === "discovery") await save({ discoveryState: undefined })
    },
    ...(config.dpop === true ? { dpop: () => (dpopSession ??= DpopSession.create()) } : {}),
    ...(inner?.addClientAuthentication !== undefined ? { addClientAuthentication: inner.addClientAuthentication.bind(inner) } : {}),
    ...(inner?.prepareTokenRequest !== undefined ? { prepareTokenRequest: inner.prepareTokenRequest.bind(inner) } : {}),
    ...(inner?.saveAuthorizationServerUrl !== undefined ? { saveAuthorizationServerUrl: inner.saveAuthorizationServerUrl.bind(inner) } : {}),
    ...(inner?.authorizationServerUrl !== undefined ? { authorizationServerUrl: inner.authorizationServerUrl.bind(inner) } : {}),
    ...(inner?.saveResourceUrl !== undefined ? { saveResourceUrl: inner.saveResourceUrl.bind(inner) } : {}),
    ...(inner?.resourceUrl !== undefined ? { resourceUrl: inner.resourceUrl.bind(inner) } : {})
  }

  /** The authorization server is reached with plain fetch: config headers are for the MCP server only. */
  const asFetch: FetchLike = (input, init) => fetch(input, init)

  const currentToken = async () => {
    await load()
    return stored.tokens?.access_token
  }

  /**
   * The one recovery in flight for this server. `used` is the token the failed request carried: if
   * another session already replaced it, there is nothing to do but retry. Resolves `true` when there is a
   * (new) token to retry with, `false` when a user must authorise first (`pendingUrl` is set).
   */
  const recover = async (used: string | undefined, run: () => Promise<"AUTHORIZED" | "REDIRECT">): Promise<boolean> => {
    const current = await currentToken()
    if (current !== undefined && current !== used) return true
    if (inflight !== undefined) return inflight
    if (pendingUrl !== undefined) return false
    const flight = (async () => {
      try {
        lastFailure = undefined
        return (await run()) === "AUTHORIZED"
      } catch (e) {
        lastFailure = e
        throw e
      }
    })()
    inflight = flight
    try {
      return await flight
    } finally {
      inflight = undefined
    }
  }

  const onUnauthorized = (used: string | undefined, response: Response) => {
    const challenge = extractWWWAuthenticateParams(response)
    return recover(used, async () => {
      if (challenge.resourceMetadataUrl !== undefined) resourceMetadataUrl = challenge.resourceMetadataUrl
      if (challenge.scope !== undefined) requestedScope = computeScopeUnion(requestedScope, challenge.scope)
      // A token the server refused: discover again, so a server that moved to another authorization server
      // (its metadata names a new one) is followed; the SDK then re-registers there (SEP-2352).
      if (used !== undefined) await provider.invalidateCredentials?.("discovery")
      return sdkAuth(provider, {
        serverUrl,
        fetchFn: asFetch,
        ...(resourceMetadataUrl !== undefined ? { resourceMetadataUrl } : {}),
        ...(requestedScope !== undefined ? { scope: requestedScope } : {})
      })
    })
  }

  const onInsufficientScope = (used: string | undefined, response: Response) => {
    const challenge = extractWWWAuthenticateParams(response)
    return recover(used, async () => {
      if (challenge.resourceMetadataUrl !== undefined) resourceMetadataUrl = challenge.resourceMetadataUrl
      const granted = stored.tokens?.scope
      requestedScope = computeScopeUnion(requestedScope, granted, challenge.scope)
      return sdkAuth(provider, {
        serverUrl,
        fetchFn: asFetch,
        ...(resourceMetadataUrl !== undefined ? { resourceMetadataUrl } : {}),
        ...(requestedScope !== undefined ? { scope: requestedScope } : {}),
        forceReauthorization: isStrictScopeSuperset(requestedScope, granted)
      })
    })
  }

  const sameServer = (target: URL) => target.origin === serverUrl.origin

  const transportOptions = (keelFetch: FetchLike) => {
    // DPoP proofs are signed innermost, right above Keel's crash-detecting fetch.
    const base = config.dpop === true ? withDpopFromProvider(provider)(keelFetch) : keelFetch
    const authFetch: FetchLike = async (input, init) => {
      const target = new URL(input instanceof URL ? input.href : String(input))
      if (!sameServer(target)) return base(input, init)
      const send = async () => {
        const token = await currentToken()
        const headers = new Headers(init?.headers)
        if (token !== undefined) headers.set("authorization", `Bearer ${token}`)
        return { token, response: await base(input, { ...init, headers }) }
      }
      const first = await send()
      const { status } = first.response
      let recovered = false
      if (status === 401) {
        recovered = await onUnauthorized(first.token, first.response)
      } else if (status === 403 && extractWWWAuthenticateParams(first.response).error === "insufficient_scope") {
        recovered = await onInsufficientScope(first.token, first.response)
      }
      if (!recovered) return first.response
      await first.response.body?.cancel().catch(() => {})
      return (await send()).response
    }
    // The transport reads the token before each request and, on a 401 that the fetch above could not fix,
    // fails with UnauthorizedError (no second recovery: it has no onUnauthorized).
    const authProvider: AuthProvider = { token: currentToken }
    return { authProvider, fetch: authFetch }
  }

  const toError = (error: unknown): AuthorizationRequiredError | McpAuthError | undefined => {
    if (!isAuthFailure(error)) return undefined
    if (pendingUrl !== undefined && lastFailure === undefined) {
      // Not the server's fault: marked so no circuit breaker counts it, whatever its classifier.
      return markUncounted(
        new AuthorizationRequiredError({
          server,
          authorizationUrl: pendingUrl,
          message: `${server} needs authorization: send the user to the authorization URL, then call finishAuth("${server}", code)`
        })
      )
    }
    const cause = lastFailure ?? error
    const status = statusOf(cause) ?? statusOf(error)
    return markUncounted(
      new McpAuthError({
        server,
        message: `authorization with ${server} failed: ${failureText(cause)}`,
        ...(status !== undefined ? { status } : {})
      })
    )
  }

  const finishAuth = (callback: string | URL | URLSearchParams) =>
    Effect.tryPromise({
      try: async () => {
        const params = typeof callback === "string" ? undefined : callback instanceof URL ? callback.searchParams : callback
        const code = params === undefined ? (callback as string) : params.get("code")
        if (code === null || code === "") {
          throw new UnauthorizedError(`the callback carries no code${params?.get("error") ? ` (error ${params.get("error")})` : ""}`)
        }
        const iss = params?.get("iss") ?? undefined
        const result = await sdkAuth(provider, {
          serverUrl,
          authorizationCode: code,
          fetchFn: asFetch,
          ...(iss !== undefined ? { iss } : {}),
          ...(resourceMetadataUrl !== undefined ? { resourceMetadataUrl } : {}),
          ...(requestedScope !== undefined ? { scope: requestedScope } : {})
        })
        if (result !== "AUTHORIZED") throw new UnauthorizedError("the authorization code was not accepted")
        pendingUrl = undefined
        lastFailure = undefined
        await save({ codeVerifier: undefined })
      },
      catch: (e) => new McpAuthError({ server, message: `finishing authorization with ${server} failed: ${failureText(e)}` })
    })

  const logout = Effect.tryPromise({
    try: async () => {
      stored = { url }
      pendingUrl = undefined
      await run(store.remove(server))
    },
    catch: (e) => new McpAuthError({ server, message: `logout from ${server} failed: ${failureText(e)}` })
  })

  return {
    server,
    url,
    provider,
    pendingAuthorizationUrl: () => pendingUrl,
    transportOptions,
    toError,
    finishAuth,
    logout
  }
}

// ---------------------------------------------------------------------------------------------------------
// McpAuth service
// ---------------------------------------------------------------------------------------------------------

/**
 * The auth states of every server, one per server name, over one {@link TokenStore}.
 *
 * @since 0.3.0
 * @category models
 */
export interface McpAuthShape {
  /** The server's shared state (created on first use; a changed URL or auth config makes a new one). */
  readonly forServer: (server: string, url: string, config: AuthConfig) => ServerAuth
  /** The state of a server that has one. */
  readonly get: (server: string) => Option.Option<ServerAuth>
  /** Redeems an authorization code (or callback query) for a server whose authorization is pending. */
  readonly finishAuth: (server: string, callback: string | URL | URLSearchParams) => Effect.Effect<void, McpAuthError>
  /** Forgets a server's tokens. */
  readonly logout: (server: string) => Effect.Effect<void, McpAuthError>
}

/**
 * Builds the registry over a token store.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeWith = (store: TokenStoreShape): McpAuthShape => {
  const states = new Map<string, { readonly key: string; readonly state: ServerAuth }>()
  const noState = (server: string) =>
    new McpAuthError({ server, message: `${server} has no auth state: it is not an HTTP server with an auth section, or it was never connected` })
  return {
    forServer: (server, url, config) => {
      const key = createHash("sha256").update(`${url}\n${JSON.stringify(Schema.encodeSync(AuthConfig)(config))}`).digest("hex")
      const found = states.get(server)
      if (found !== undefined && found.key === key) return found.state
      const state = makeServerAuth(server, url, config, store)
      states.set(server, { key, state })
      return state
    },
    get: (server) => Option.fromNullishOr(states.get(server)?.state),
    finishAuth: (server, callback) => {
      const found = states.get(server)
      return found === undefined ? Effect.fail(noState(server)) : found.state.finishAuth(callback)
    },
    logout: (server) => {
      const found = states.get(server)
      return found === undefined ? Effect.void : found.state.logout
    }
  }
}

/**
 * The registry over the {@link TokenStore} service.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make: Effect.Effect<McpAuthShape, never, TokenStore> = Effect.map(Effect.service(TokenStore), makeWith)

/**
 * The auth service. A `Context.Reference`: without a layer, every program gets one process-wide
 * registry with tokens in memory, so an HTTP server with an `auth` section works with no setup.
 * {@link layer} replaces it with one over the {@link TokenStore} you provide (e.g. a file, to survive
 * restarts).
 *
 * @since 0.3.0
 * @category services
 */
export const McpAuth: Context.Reference<McpAuthShape> = Context.Reference<McpAuthShape>("@keel/core/McpAuth", {
  defaultValue: () => makeWith(memoryStore())
})

/**
 * {@link McpAuth} over the {@link TokenStore} service.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer: Layer.Layer<never, never, TokenStore> = Layer.effect(McpAuth, make)

/**
 * {@link McpAuth} over a token store in a JSON file (mode 0600).
 *
 * @since 0.3.0
 * @category layers
 */
export const layerFile = (path: string): Layer.Layer<never> => layer.pipe(Layer.provide(TokenStore.layerFile(path)))

/**
 * The session auth for a server config, from the {@link McpAuth} in context: `undefined` for stdio servers
 * and HTTP servers without an `auth` section.
 *
 * @since 0.3.0
 * @category constructors
 */
export const sessionAuthFor = (
  server: string,
  config: { readonly type: string; readonly url?: string; readonly auth?: AuthConfig | undefined }
): Effect.Effect<SessionAuth | undefined> =>
  config.type === "stdio" || config.url === undefined || config.auth === undefined
    ? Effect.succeed(undefined)
    : Effect.map(Effect.service(McpAuth), (registry) => registry.forServer(server, config.url!, config.auth!))
