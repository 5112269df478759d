#!/usr/bin/env node
/**
 * Entry point of the demo MCP server.
 *
 *   node packages/demo-server/src/main.ts                         # stdio
 *   node packages/demo-server/src/main.ts --transport http        # Streamable HTTP on 127.0.0.1, any port
 *   node packages/demo-server/src/main.ts --page-size 3 --startup-delay-ms 500
 *   node packages/demo-server/src/main.ts --protocol-version 2025-06-18   # pinned to an older revision
 *
 * By default it speaks MCP 2026-07-28 (`server/discover`) and every older revision (`initialize`).
 *
 * Over HTTP it prints `KEEL_DEMO_LISTENING <url>` on stdout once it listens. With `--auth` the URL is an
 * OAuth-protected resource, and `KEEL_DEMO_AUTH_SERVER <issuer>` names its local authorization server.
 */
import { serveStdio, StdioServerTransport } from "@modelcontextprotocol/server/stdio"
import { createDemoServer, DemoState } from "./DemoServer.ts"
import { protect, startAuthServer } from "./auth.ts"
import { serveHttp } from "./http.ts"
import { parseOptions, servesModern } from "./options.ts"

/** The line an HTTP demo server prints once it listens; `launch.ts` waits for it. */
export const LISTENING = "KEEL_DEMO_LISTENING"

const main = async () => {
  const options = parseOptions(process.argv.slice(2))
  if (options.startupDelayMs > 0) await new Promise((r) => setTimeout(r, options.startupDelayMs))
  if (options.exitAtStart !== undefined) {
    process.stderr.write(`keel-demo: exiting at start with code ${options.exitAtStart} (--exit-at-start)\n`)
    process.exit(options.exitAtStart)
  }
  const state = new DemoState(options)
  if (options.transport === "stdio") {
    // The parent closing stdin is the stdio way to say "stop".
    process.stdin.once("end", () => process.exit(0))
    if (servesModern(options)) {
      // The SDK's stdio entry picks the era from the opening message (`server/discover` or `initialize`)
      // and pins one instance for the connection.
      serveStdio(() => createDemoServer(state))
    } else {
      await createDemoServer(state).connect(new StdioServerTransport())
    }
    process.stderr.write(`keel-demo: serving on stdio (pid ${process.pid})\n`)
  } else {
    const served = await serveHttp(state)
    const authServer = options.auth ? await startAuthServer() : undefined
    const gated = authServer !== undefined ? await protect(served.http, { authServer }) : undefined
    if (authServer !== undefined) process.stdout.write(`KEEL_DEMO_AUTH_SERVER ${authServer.issuer}\n`)
    process.stdout.write(`${LISTENING} ${gated?.url ?? served.url}\n`)
    const stop = () => {
      Promise.all([gated?.close(), authServer?.close()]).then(() => served.close()).finally(() => process.exit(0))
    }
    process.once("SIGTERM", stop)
    process.once("SIGINT", stop)
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`keel-demo: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(2)
})
