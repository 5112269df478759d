/**
 * The SDK's own client for the conformance suite's auth scenarios, with no Keel in it: plain
 * `@modelcontextprotocol/client` transports and the SDK's auth providers, in the way the SDK documents them
 * (an `OAuthClientProvider` whose redirect is followed like a browser would, then `finishAuth` and a new
 * connect). `conformance.test.ts` runs it only to show that a scenario Keel's client fails is a suite
 * defect that fails the reference client the same way.
 *
 * `node conformance-reference-client.ts <server-url>` with `MCP_CONFORMANCE_SCENARIO` (and
 * `MCP_CONFORMANCE_CONTEXT` for scenarios that carry credentials) set by the suite.
 */
import {
  Client,
  ClientCredentialsProvider,
  CrossAppAccessProvider,
  DpopSession,
  type OAuthClientInformationMixed,
  type OAuthClientMetadata,
  type OAuthClientProvider,
  type OAuthDiscoveryState,
  type OAuthTokens,
  PrivateKeyJwtProvider,
  requestJwtAuthorizationGrant,
  StreamableHTTPClientTransport,
  UnauthorizedError
} from "@modelcontextprotocol/client"

const url = new URL(process.argv.at(-1)!)
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? ""
const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? "{}") as Record<string, string | undefined>
const CIMD_URL = "https://conformance-test.local/client-metadata.json"
// The suite names the revision a scenario runs at; 2026-07-28 scenarios need the stateless lifecycle.
const version = process.env.MCP_CONFORMANCE_PROTOCOL_VERSION ?? "2025-11-25"
const negotiation = version >= "2026-07-28" ? { versionNegotiation: { mode: { pin: version } } } as const : {}

/** An authorization-code provider kept in memory; the "browser" follows the redirect and keeps the callback. */
class BrowserProvider implements OAuthClientProvider {
  info: OAuthClientInformationMixed | undefined
  saved: OAuthTokens | undefined
  verifier = ""
  discovery: OAuthDiscoveryState | undefined
  callback: URLSearchParams | undefined
  clientMetadataUrl?: string
  constructor(preRegistered?: OAuthClientInformationMixed, cimd?: string) {
    this.info = preRegistered
    if (cimd !== undefined) this.clientMetadataUrl = cimd
  }
  get redirectUrl() {
    return "http://localhost:3000/callback"
  }
  get clientMetadata(): OAuthClientMetadata {
    return { client_name: "sdk-reference-client", redirect_uris: ["http://localhost:3000/callback"] }
  }
  clientInformation() {
    return this.info
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.info = info
  }
  tokens() {
    return this.saved
  }
  saveTokens(tokens: OAuthTokens) {
    this.saved = tokens
  }
  saveCodeVerifier(v: string) {
    this.verifier = v
  }
  codeVerifier() {
    return this.verifier
  }
  dpopSession: Promise<DpopSession> | undefined
  dpop() {
    return scenario.startsWith("auth/dpop") ? (this.dpopSession ??= DpopSession.create()) : undefined
  }
  saveDiscoveryState(s: OAuthDiscoveryState) {
    this.discovery = s
  }
  discoveryState() {
    return this.discovery
  }
  async redirectToAuthorization(authorizationUrl: URL) {
    const response = await fetch(authorizationUrl, { redirect: "manual" })
    const location = response.headers.get("location")
    if (location === null) throw new Error(`no redirect from ${authorizationUrl}`)
    this.callback = new URL(location).searchParams
  }
}

const provider = (): OAuthClientProvider => {
  switch (scenario) {
    case "auth/client-credentials-basic":
      return new ClientCredentialsProvider({ clientId: context.client_id!, clientSecret: context.client_secret! })
    case "auth/client-credentials-jwt":
      return new PrivateKeyJwtProvider({
        clientId: context.client_id!,
        privateKey: context.private_key_pem!,
        algorithm: context.signing_algorithm ?? "ES256"
      })
    case "auth/enterprise-managed-authorization":
      return new CrossAppAccessProvider({
        clientId: context.client_id!,
        clientSecret: context.client_secret!,
        assertion: async (ctx) =>
          (await requestJwtAuthorizationGrant({
            tokenEndpoint: context.idp_token_endpoint!,
            audience: ctx.authorizationServerUrl,
            resource: ctx.resourceUrl,
            idToken: context.idp_id_token!,
            clientId: context.idp_client_id!,
            ...(ctx.scope !== undefined ? { scope: ctx.scope } : {}),
            fetchFn: ctx.fetchFn
          })).jwtAuthGrant
      })
    case "auth/wif-jwt-bearer": {
      let saved: OAuthTokens | undefined
      return {
        redirectUrl: undefined,
        clientMetadata: { client_name: "sdk-reference-client", redirect_uris: [], grant_types: ["urn:ietf:params:oauth:grant-type:jwt-bearer"], token_endpoint_auth_method: "none" },
        clientInformation: () => ({ client_id: context.client_id! }),
        tokens: () => saved,
        saveTokens: (t) => {
          saved = t
        },
        redirectToAuthorization: () => {
          throw new Error("no interactive step")
        },
        saveCodeVerifier: () => {},
        codeVerifier: () => "",
        prepareTokenRequest: (scope) =>
          new URLSearchParams({
            grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
            assertion: context.valid_jwt!,
            ...(scope !== undefined ? { scope } : {})
          })
      }
    }
    case "auth/pre-registration":
      return new BrowserProvider({ client_id: context.client_id!, client_secret: context.client_secret! })
    default:
      return new BrowserProvider(undefined, CIMD_URL)
  }
}

const run = async () => {
  const auth = provider()
  // At most three authorizations: the suite's scope-retry-limit scenario fails a client that tries more.
  for (let attempt = 0; attempt < 3; attempt++) {
    const transport = new StreamableHTTPClientTransport(url, { authProvider: auth })
    const client = new Client({ name: "sdk-reference-client", version: "1.0.0" }, { capabilities: {}, ...negotiation })
    try {
      await client.connect(transport)
      await client.listTools()
      await client.callTool({ name: "test-tool", arguments: {} })
      await client.close()
      return
    } catch (e) {
      await client.close().catch(() => {})
      const browser = auth instanceof BrowserProvider ? auth : undefined
      if (!(e instanceof UnauthorizedError) || browser?.callback === undefined) throw e
      const callback = browser.callback
      browser.callback = undefined
      await transport.finishAuth(callback)
    }
  }
  throw new Error("still unauthorized after 3 authorizations")
}

run().then(() => process.exit(0), (e: unknown) => {
  console.error(e)
  process.exit(1)
})
