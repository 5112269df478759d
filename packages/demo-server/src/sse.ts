/**
 * The legacy HTTP+SSE transport (MCP spec 2024-11-05), server side, for the demo server: the SDK v2 server
 * no longer ships one, and Keel's clients still speak it (`type: "sse"`).
 *
 * - `GET /sse` opens an event stream; its first event, `endpoint`, names where to POST
 *   (`/messages?sessionId=…`); every server message then arrives as a `message` event.
 * - `POST /messages?sessionId=…` carries one client message; the answer is `202 Accepted`.
 */
import { randomUUID } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { JSONRPCMessage, Transport } from "@modelcontextprotocol/server"

/** One legacy SSE session: a `Transport` the SDK `Server` connects to. */
export class LegacySseTransport implements Transport {
  readonly sessionId: string = randomUUID()
  onclose?: () => void
  onerror?: (error: Error) => void
  onmessage?: (message: JSONRPCMessage) => void
  private readonly response: ServerResponse
  private closed = false

  constructor(response: ServerResponse) {
    this.response = response
    response.on("close", () => this.finish())
  }

  async start(): Promise<void> {
    this.response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" })
    this.response.write(`event: endpoint\ndata: /messages?sessionId=${this.sessionId}\n\n`)
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) throw new Error("SSE stream closed")
    this.response.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`)
  }

  /** Hands a POSTed client message to the server. */
  receive(message: JSONRPCMessage): void {
    this.onmessage?.(message)
  }

  async close(): Promise<void> {
    this.response.end()
    this.finish()
  }

  private finish(): void {
    if (this.closed) return
    this.closed = true
    this.onclose?.()
  }
}

/** Routes `GET /sse` and `POST /messages`; answers `false` for any other path. */
export const legacySseRoutes = (connect: (transport: LegacySseTransport) => Promise<void>) => {
  const sessions = new Map<string, LegacySseTransport>()
  return async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> => {
    if (url.pathname === "/sse" && req.method === "GET") {
      const transport = new LegacySseTransport(res)
      sessions.set(transport.sessionId, transport)
      await connect(transport)
      const serverOnClose = transport.onclose // set by the SDK server's connect
      transport.onclose = () => {
        sessions.delete(transport.sessionId)
        serverOnClose?.()
      }
      return true
    }
    if (url.pathname === "/messages" && req.method === "POST") {
      const transport = sessions.get(url.searchParams.get("sessionId") ?? "")
      if (transport === undefined) {
        res.writeHead(404).end("unknown session")
        return true
      }
      const chunks: Array<Buffer> = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      let message: JSONRPCMessage
      try {
        message = JSON.parse(Buffer.concat(chunks).toString("utf8")) as JSONRPCMessage
      } catch {
        res.writeHead(400).end("invalid JSON")
        return true
      }
      res.writeHead(202).end("Accepted")
      transport.receive(message)
      return true
    }
    return false
  }
}
