/**
 * OAuth 2.1 against a remote MCP server, offline: the demo server over Streamable HTTP in its auth mode (a
 * protected resource behind the SDK's bearer-auth helpers) and a local authorization server on 127.0.0.1
 * (dynamic client registration, PKCE, rotating refresh tokens). Everything printed is measured on this run:
 *
 * - the first call fails with a typed `AuthorizationRequiredError` carrying the authorization URL;
 * - the "user" approves (a fetch that follows the URL, as a browser would) and the app hands the callback
 *   to `finishAuth`; the same call then goes through, nothing restarted;
 * - four concurrent calls on four pooled sessions: still one token request (one token set per server);
 * - every access token expires: the sessions' 401s make one refresh;
 * - the breaker never counted the authorization as a failure;
 * - a "restart" (a new manager over the same token file) calls at once, with no token request at all.
 *
 * Run: `npm run example -- 07`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { McpAuth, McpClientManager } from "@keel/core"
import { DemoState, parseOptions, serveHttp } from "@keel/demo-server"
import { protect, startAuthServer } from "@keel/demo-server/auth"
import { Console, Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** The embedded demo server in auth mode and its authorization server, stopped with the scope. */
const protectedDemo = Effect.acquireRelease(
  Effect.promise(async () => {
    const authServer = await startAuthServer({ scopes: ["mcp"] })
    const demo = await serveHttp(new DemoState(parseOptions(["--transport", "http"])))
    const server = await protect(demo.http, { authServer, requiredScopes: ["mcp"] })
    return { authServer, demo, server }
  }),
  ({ authServer, demo, server }) => Effect.promise(() => server.close().then(() => demo.close()).then(() => authServer.close()))
)

/** A temporary token file, removed with the scope. */
const tokenFile = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "keel-07-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.map((dir) => join(dir, "tokens.json")))

/** The user's browser: follows the authorization URL; the authorization server approves and redirects back. */
const userApproves = (authorizationUrl: string) =>
  Effect.promise(async () => {
    const response = await fetch(authorizationUrl, { redirect: "manual" })
    return new URL(response.headers.get("location")!)
  })

const program = Effect.gen(function*() {
  const { authServer, server } = yield* protectedDemo
  const tokens = yield* tokenFile
  const counted = () => JSON.stringify(authServer.stats().tokenRequests)
  const config = {
    mcpServers: {
      docs: { url: server.url, auth: { type: "oauth", scopes: ["mcp"], redirectUrl: "http://127.0.0.1:8976/callback" } }
    },
    keel: { defaults: { pool: { maxConnections: 4, maxRequestsPerConnection: 1 } } }
  }
  yield* Console.log(`protected MCP server ${server.url}, authorization server ${authServer.issuer}`)

  // --- First run: interactive authorization, then pooled sessions sharing one token set -------------------
  yield* Effect.gen(function*() {
    const mcp = yield* McpClientManager
    const first = yield* Effect.flip(mcp.listTools("docs"))
    if (first._tag !== "AuthorizationRequiredError") return yield* Effect.die(first)
    yield* Console.log(`listTools -> ${first._tag}: open ${first.authorizationUrl.slice(0, 60)}…`)
    const callback = yield* userApproves(first.authorizationUrl)
    yield* Console.log(`the user approved; the redirect brought code=${callback.searchParams.get("code")!.slice(0, 6)}… to the app`)
    yield* mcp.finishAuth("docs", callback)
    const tools = yield* mcp.listTools("docs")
    yield* Console.log(`listTools -> ${tools.length} tools; token requests so far: ${counted()}`)

    const results = yield* Effect.all(
      Array.from({ length: 4 }, (_, i) => mcp.callTool("docs", "slow", { ms: 100 + i })),
      { concurrency: "unbounded" }
    )
    const status = yield* mcp.status("docs")
    yield* Console.log(`${results.length} concurrent calls on ${status.pool.total} pooled sessions; token requests: ${counted()}`)

    authServer.expireAccessTokens()
    yield* Effect.all(Array.from({ length: 4 }, () => mcp.callTool("docs", "echo", { message: "after expiry" })), { concurrency: "unbounded" })
    yield* Console.log(`every access token expired, 4 calls later: ${counted()} (one refresh for all sessions)`)
    yield* Console.log(`breaker: ${(yield* mcp.status("docs")).breaker} (the authorization was never counted as a failure)`)
  }).pipe(Effect.scoped, Effect.provide(McpClientManager.layerConfig(config)), Effect.provide(McpAuth.layerFile(tokens)))

  // --- Restart: a new manager over the same token file ---------------------------------------------------
  const before = counted()
  yield* Effect.gen(function*() {
    const mcp = yield* McpClientManager
    const echo = yield* mcp.callTool("docs", "echo", { message: "after restart" })
    const text = echo.content[0]?.type === "text" ? echo.content[0].text : "?"
    yield* Console.log(`after a restart: echo -> "${text}"; token requests ${before} -> ${counted()} (none: the stored tokens were reused)`)
  }).pipe(Effect.scoped, Effect.provide(McpClientManager.layerConfig(config)), Effect.provide(McpAuth.layerFile(tokens)))
})

NodeRuntime.runMain(Effect.scoped(program))
