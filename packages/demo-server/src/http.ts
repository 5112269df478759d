/**
 * Serves the demo server over Streamable HTTP at `http://host:port/mcp`:
 *
 * - 2025-era traffic (the `initialize` handshake, `Mcp-Session-Id`): one `Server` per MCP session;
 * - 2026-07-28 traffic (`server/discover`, per-request `_meta` and `MCP-Protocol-Version`): the SDK's
 *   stateless entry (`createMcpHandler`), one `Server` per request, `subscriptions/listen` for list changes.
 *   Not mounted when `--protocol-version` pins an older revision.
 */
import { randomUUID } from "node:crypto"
import { createServer, type Server as HttpServer } from "node:http"
import type { AddressInfo } from "node:net"
import { NodeStreamableHTTPServerTransport, toNodeHandler, toWebRequest } from "@modelcontextprotocol/node"
import { createMcpHandler, isInitializeRequest, isLegacyRequest } from "@modelcontextprotocol/server"
import { createDemoServer, type DemoState } from "./DemoServer.ts"
import { servesModern } from "./options.ts"
import { legacySseRoutes } from "./sse.ts"

/** A running HTTP demo server. */
export interface DemoHttpServer {
  readonly url: string
  readonly http: HttpServer
  readonly close: () => Promise<void>
}

/**
 * Starts the HTTP transports on `state.options.host:port`: Streamable HTTP at `/mcp`, and the legacy
 * HTTP+SSE transport at `/sse` (+ `/messages`).
 */
export const serveHttp = async (state: DemoState): Promise<DemoHttpServer> => {
  const transports = new Map<string, NodeStreamableHTTPServerTransport>()
  const sse = legacySseRoutes((transport) => createDemoServer(state).connect(transport))
  const modern = servesModern(state.options)
    ? createMcpHandler(() => createDemoServer(state, true), { legacy: "reject" })
    : undefined
  const modernNode = modern !== undefined ? toNodeHandler(modern) : undefined
  const notifyToolsChanged = () => modern?.notify.toolsChanged()
  if (modern !== undefined) state.toolsChangedListeners.add(notifyToolsChanged)
  const notifyResourcesChanged = () => modern?.notify.resourcesChanged()
  const notifyPromptsChanged = () => modern?.notify.promptsChanged()
  const notifyResourceUpdated = (uri: string) => modern?.notify.resourceUpdated(uri)
  if (modern !== undefined) {
    state.surface.listeners.resourcesChanged.add(notifyResourcesChanged)
    state.surface.listeners.promptsChanged.add(notifyPromptsChanged)
    state.surface.listeners.resourceUpdated.add(notifyResourceUpdated)
  }

  const http = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", "http://localhost")
      if (await sse(req, res, url)) return
      if (url.pathname !== "/mcp") {
        res.writeHead(404).end("not found")
        return
      }
      const sessionId = req.headers["mcp-session-id"]
      const existing = typeof sessionId === "string" ? transports.get(sessionId) : undefined
      if (existing !== undefined) {
        await existing.handleRequest(req, res)
        return
      }
      if (req.method !== "POST") {
        res.writeHead(400, { "content-type": "application/json" })
          .end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message: "No valid session" }, id: null }))
        return
      }
      const chunks: Array<Buffer> = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const body: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"))
      // The request was already read; the adapters only need its method, url and headers.
      const nodeReq = req as typeof req & { method: string; url: string }
      if (modernNode !== undefined && !(await isLegacyRequest(await toWebRequest(nodeReq, body), body))) {
        await modernNode(nodeReq, res, body)
        return
      }
      if (!isInitializeRequest(body)) {
        res.writeHead(400, { "content-type": "application/json" })
          .end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message: "No valid session" }, id: null }))
        return
      }
      const transport: NodeStreamableHTTPServerTransport = new NodeStreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          transports.set(id, transport)
        },
        onsessionclosed: (id) => {
          transports.delete(id)
        }
      })
      const server = createDemoServer(state)
      await server.connect(transport)
      await transport.handleRequest(req, res, body)
    } catch (error) {
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "application/json" })
          .end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32603, message: String(error) }, id: null }))
      }
    }
  })

  await new Promise<void>((resolve, reject) => {
    http.once("error", reject)
    http.listen(state.options.port, state.options.host, () => resolve())
  })
  const { port } = http.address() as AddressInfo
  const host = state.options.host.includes(":") ? `[${state.options.host}]` : state.options.host
  return {
    url: `http://${host}:${port}/mcp`,
    http,
    close: async () => {
      state.toolsChangedListeners.delete(notifyToolsChanged)
      state.surface.listeners.resourcesChanged.delete(notifyResourcesChanged)
      state.surface.listeners.promptsChanged.delete(notifyPromptsChanged)
      state.surface.listeners.resourceUpdated.delete(notifyResourceUpdated)
      await modern?.close().catch(() => {})
      for (const t of transports.values()) await t.close().catch(() => {})
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    }
  }
}
