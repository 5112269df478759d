/**
 * Keel's client for the conformance suite's auth scenarios (`auth/*`): a thin program over
 * `McpClientManager`. Each scenario becomes a server entry with an `auth` section, exactly as a user would
 * write it in `mcpServers`; the interactive flow is the Effect one: a call fails with
 * `AuthorizationRequiredError`, the "user" (here a fetch that follows the authorization URL, whose mock
 * server approves at once) comes back with the callback, `manager.finishAuth` redeems it, and the call is
 * made again. At most three authorizations (the suite's
 * `scope-retry-limit` fails a client that tries more).
 *
 * `node conformance-auth-client.ts <server-url>`, with `MCP_CONFORMANCE_SCENARIO` and, for scenarios with
 * credentials, `MCP_CONFORMANCE_CONTEXT` set by the suite.
 */
import { Effect } from "effect"
import type { UnknownServerError } from "../src/ManagerErrors.ts"
import { AuthorizationRequiredError, type McpAuthError } from "../src/McpAuth.ts"
import { McpClientManager } from "../src/McpClientManager.ts"

const url = process.argv.at(-1)!
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? ""
const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? "{}") as Record<string, string | undefined>
const server = "conformance"
const REDIRECT = "http://localhost:3000/callback"
const CIMD = "https://conformance-test.local/client-metadata.json"

/** The scenario as a server's `auth` section (the JSON a user writes in `mcpServers`). */
const authSection = (): unknown => {
  switch (scenario) {
    case "auth/client-credentials-basic":
      return { type: "client_credentials", clientId: context.client_id, clientSecret: context.client_secret }
    case "auth/client-credentials-jwt":
      return {
        type: "client_credentials",
        clientId: context.client_id,
        privateKey: context.private_key_pem,
        algorithm: context.signing_algorithm ?? "ES256"
      }
    case "auth/enterprise-managed-authorization":
      return {
        type: "cross_app_access",
        clientId: context.client_id,
        clientSecret: context.client_secret,
        idpTokenEndpoint: context.idp_token_endpoint,
        idpClientId: context.idp_client_id,
        idToken: context.idp_id_token
      }
    case "auth/wif-jwt-bearer":
      return { type: "jwt_bearer", clientId: context.client_id, assertion: context.valid_jwt }
    case "auth/pre-registration":
      return { type: "oauth", clientId: context.client_id, clientSecret: context.client_secret, redirectUrl: REDIRECT }
    default:
      return { type: "oauth", clientMetadataUrl: CIMD, redirectUrl: REDIRECT, ...(scenario.startsWith("auth/dpop") ? { dpop: true } : {}) }
  }
}

/** The "user's browser": follows the authorization URL and returns the callback's query. */
const browser = (authorizationUrl: string) =>
  Effect.promise(async () => {
    const response = await fetch(authorizationUrl, { redirect: "manual" })
    const location = response.headers.get("location")
    if (location === null) throw new Error("the authorization server did not redirect back")
    return new URL(location).searchParams
  })

const program = Effect.gen(function*() {
  const mcp = yield* McpClientManager
  let authorizations = 0
  /** Runs `effect`; when a user must authorise, authorises (at most 3 times in all) and runs it again. */
  const authorized = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | Error | McpAuthError | UnknownServerError, R> =>
    Effect.catch(effect, (e): Effect.Effect<A, E | Error | McpAuthError | UnknownServerError, R> => {
      if (!(e instanceof AuthorizationRequiredError)) return Effect.fail(e)
      if (++authorizations > 3) return Effect.fail(new Error("still unauthorized after 3 authorizations"))
      return Effect.flatMap(browser(e.authorizationUrl), (callback) =>
        Effect.andThen(mcp.finishAuth(server, callback), authorized(effect)))
    })
  const tools = yield* authorized(mcp.listTools(server))
  if (tools.some((t) => t.name === "test-tool")) yield* authorized(mcp.callTool(server, "test-tool", {}))
}).pipe(
  // The scenario's server as a user writes it in `mcpServers`: a URL and an `auth` section.
  Effect.provide(McpClientManager.layerConfig({ mcpServers: { [server]: { url, auth: authSection() } } }))
)

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
