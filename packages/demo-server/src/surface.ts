/**
 * The demo server beyond tools: resources (static, a counter that updates, dynamic ones), resource
 * templates, subscriptions, prompts, completions, and the trace context each request carried.
 *
 * - `demo://readme` (markdown), `demo://counter` (the counter; `bump_counter` increments it and sends
 *   `notifications/resources/updated` to its subscribers), `demo://extra/<name>` (added and removed with
 *   `set_resources`, which sends `resources/list_changed`).
 * - Templates `demo://greeting/{name}` and `demo://weather/{city}`, with completions for `name` and `city`.
 * - Prompts `greet` (`name` required, `style` optional: formal, casual, pirate; both completable) and
 *   `summarize` (`text` required), plus dynamic prompts from `set_prompts` (`prompts/list_changed`).
 * - `trace_context`: answers with the `traceparent` / `tracestate` / `baggage` its request carried in
 *   `params._meta`; `stats.traceparents` keeps the last one per method for every other request.
 */
import { ProtocolError, type Server } from "@modelcontextprotocol/server"
import type { CallToolResult, Prompt, Resource, Tool } from "@modelcontextprotocol/server"

const INVALID_PARAMS = -32602

/** The tools this module adds to the demo server. */
export const surfaceTools: ReadonlyArray<Tool> = [
  {
    name: "bump_counter",
    description: "Increments demo://counter and notifies its subscribers (notifications/resources/updated).",
    inputSchema: { type: "object", properties: { by: { type: "integer" } }, additionalProperties: false }
  },
  {
    name: "set_resources",
    description: "Adds or removes resources demo://extra/<name> and sends notifications/resources/list_changed.",
    inputSchema: {
      type: "object",
      properties: { add: { type: "array", items: { type: "string" } }, remove: { type: "array", items: { type: "string" } } },
      additionalProperties: false
    }
  },
  {
    name: "set_prompts",
    description: "Adds or removes prompts (each takes a required `topic`) and sends notifications/prompts/list_changed; `listDelayMs` makes prompts/list answer that long after taking its snapshot.",
    inputSchema: {
      type: "object",
      properties: {
        add: { type: "array", items: { type: "string" } },
        remove: { type: "array", items: { type: "string" } },
        listDelayMs: { type: "integer", minimum: 0 }
      },
      additionalProperties: false
    }
  },
  {
    name: "trace_context",
    annotations: { readOnlyHint: true },
    description: "Answers with the W3C trace context (traceparent, tracestate, baggage) its request carried in params._meta.",
    inputSchema: { type: "object", properties: {}, additionalProperties: false }
  }
]

const NAMES = ["Ada", "Alan", "Barbara", "Grace", "Linus", "Margaret"]
const CITIES = ["Amsterdam", "Athens", "Berlin", "Bern", "Lisbon", "London"]
const STYLES = ["formal", "casual", "pirate"]

const builtinPrompts: ReadonlyArray<Prompt> = [
  {
    name: "greet",
    description: "A greeting for someone, in a style.",
    arguments: [
      { name: "name", description: "Who to greet", required: true },
      { name: "style", description: "formal, casual or pirate", required: false }
    ]
  },
  { name: "summarize", description: "Asks for a summary of a text.", arguments: [{ name: "text", required: true }] }
]

const templates: ReadonlyArray<{ uriTemplate: string; name: string; description: string; mimeType: string }> = [
  { uriTemplate: "demo://greeting/{name}", name: "greeting", description: "A greeting for {name}", mimeType: "text/plain" },
  { uriTemplate: "demo://weather/{city}", name: "weather", description: "Made-up weather of {city}", mimeType: "application/json" }
]

/** The trace context keys of `_meta` (W3C names, as the SDK's `TRACEPARENT_META_KEY`, ...). */
const TRACE_KEYS = ["traceparent", "tracestate", "baggage"] as const

/** What the surface keeps per process (shared by every session, like `DemoState`). */
export class SurfaceState {
  counter = 0
  readonly extraResources = new Set<string>()
  readonly dynamicPrompts = new Set<string>()
  /** URIs subscribed to, per session. */
  readonly subscriptions = new Map<Server, Set<string>>()
  /** The last trace context received, per method. */
  readonly traceparents: Record<string, string> = {}
  /** Requests per method (lists, reads, prompts, completions), for cache tests. */
  readonly requests: Record<string, number> = {}
  /** `prompts/list` answers this long after taking its snapshot (a list that changes under a fetch). */
  promptsListDelayMs = 0
  /** Listeners of the stateless 2026-07-28 HTTP entry (which has no long-lived `Server`). */
  readonly listeners = {
    resourcesChanged: new Set<() => void>(),
    promptsChanged: new Set<() => void>(),
    resourceUpdated: new Set<(uri: string) => void>()
  }

  resources(): Array<Resource> {
    return [
      { uri: "demo://readme", name: "readme", mimeType: "text/markdown", description: "About the demo server" },
      { uri: "demo://counter", name: "counter", mimeType: "text/plain", description: "A counter; bump_counter increments it" },
      ...[...this.extraResources].map((n): Resource => ({ uri: `demo://extra/${n}`, name: n, mimeType: "text/plain" }))
    ]
  }

  prompts(): Array<Prompt> {
    return [
      ...builtinPrompts,
      ...[...this.dynamicPrompts].map((name): Prompt => ({
        name,
        description: `Dynamic prompt ${name}`,
        arguments: [{ name: "topic", required: true }]
      }))
    ]
  }
}

const text = (t: string): CallToolResult => ({ content: [{ type: "text", text: t }] })
const strings = (v: unknown): Array<string> => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [])

/** The trace context of a request's `_meta`. */
const traceOf = (meta: unknown): Record<string, string> => {
  const out: Record<string, string> = {}
  if (typeof meta !== "object" || meta === null) return out
  for (const k of TRACE_KEYS) {
    const v = (meta as Record<string, unknown>)[k]
    if (typeof v === "string") out[k] = v
  }
  return out
}

/** The server capabilities the surface adds. */
export const surfaceCapabilities = {
  resources: { subscribe: true, listChanged: true },
  prompts: { listChanged: true },
  completions: {}
} as const

/**
 * Registers the surface's handlers on `server`. `tools/call` of the {@link surfaceTools} goes through
 * {@link callSurfaceTool}; the demo server's own `tools/call` handler delegates to it.
 */
export const registerSurface = (server: Server, state: SurfaceState, perRequest: boolean, pageSize = 0): void => {
  /** One page of `items` (all of them when `pageSize` is 0), as `tools/list` pages (`--page-size`). */
  const page = <K extends string, T>(key: K, items: ReadonlyArray<T>, cursor: string | undefined) => {
    if (pageSize === 0) return { [key]: [...items] } as Record<K, Array<T>>
    const start = cursor === undefined ? 0 : Number.parseInt(cursor, 10)
    if (!Number.isInteger(start) || start < 0 || start > items.length) throw new ProtocolError(INVALID_PARAMS, `bad cursor ${cursor}`)
    const end = start + pageSize
    return { [key]: items.slice(start, end), ...(end < items.length ? { nextCursor: String(end) } : {}) } as Record<K, Array<T>>
  }
  const note = (method: string, meta: unknown) => {
    state.requests[method] = (state.requests[method] ?? 0) + 1
    const tp = traceOf(meta).traceparent
    if (tp !== undefined) state.traceparents[method] = tp
  }
  server.setRequestHandler("resources/list", async (request) => {
    note("resources/list", request.params?._meta)
    return page("resources", state.resources(), request.params?.cursor)
  })
  server.setRequestHandler("resources/templates/list", async (request) => {
    note("resources/templates/list", request.params?._meta)
    return page("resourceTemplates", templates, request.params?.cursor)
  })
  server.setRequestHandler("resources/read", async (request) => {
    note("resources/read", request.params._meta)
    const uri = request.params.uri
    if (uri === "demo://readme") {
      return { contents: [{ uri, mimeType: "text/markdown", text: "# keel-demo\nA demo MCP server for Keel." }] }
    }
    if (uri === "demo://counter") return { contents: [{ uri, mimeType: "text/plain", text: String(state.counter) }] }
    const greeting = /^demo:\/\/greeting\/(.+)$/.exec(uri)
    if (greeting !== null) return { contents: [{ uri, mimeType: "text/plain", text: `Hello, ${decodeURIComponent(greeting[1]!)}!` }] }
    const weather = /^demo:\/\/weather\/(.+)$/.exec(uri)
    if (weather !== null) {
      const city = decodeURIComponent(weather[1]!)
      return { contents: [{ uri, mimeType: "application/json", text: JSON.stringify({ city, celsius: 10 + (city.length % 15) }) }] }
    }
    const extra = /^demo:\/\/extra\/(.+)$/.exec(uri)
    if (extra !== null && state.extraResources.has(extra[1]!)) {
      return { contents: [{ uri, mimeType: "text/plain", text: `extra resource ${extra[1]}` }] }
    }
    throw new ProtocolError(-32002, `Resource not found: ${uri}`)
  })
  if (!perRequest) {
    server.setRequestHandler("resources/subscribe", async (request) => {
      note("resources/subscribe", request.params._meta)
      let set = state.subscriptions.get(server)
      if (set === undefined) state.subscriptions.set(server, (set = new Set()))
      set.add(request.params.uri)
      return {}
    })
    server.setRequestHandler("resources/unsubscribe", async (request) => {
      note("resources/unsubscribe", request.params._meta)
      state.subscriptions.get(server)?.delete(request.params.uri)
      return {}
    })
  }
  server.setRequestHandler("prompts/list", async (request) => {
    note("prompts/list", request.params?._meta)
    const snapshot = state.prompts()
    if (state.promptsListDelayMs > 0) await new Promise((r) => setTimeout(r, state.promptsListDelayMs))
    return page("prompts", snapshot, request.params?.cursor)
  })
  server.setRequestHandler("prompts/get", async (request) => {
    note("prompts/get", request.params._meta)
    const { name } = request.params
    const args = request.params.arguments ?? {}
    const prompt = state.prompts().find((p) => p.name === name)
    if (prompt === undefined) throw new ProtocolError(INVALID_PARAMS, `Unknown prompt: ${name}`)
    for (const a of prompt.arguments ?? []) {
      if (a.required === true && typeof args[a.name] !== "string") throw new ProtocolError(INVALID_PARAMS, `Missing required argument: ${a.name}`)
    }
    const body = name === "greet"
      ? `Write a ${args.style ?? "casual"} greeting for ${args.name}.`
      : name === "summarize"
      ? `Summarize in one sentence: ${args.text}`
      : `Tell me about ${args.topic}.`
    return { description: prompt.description, messages: [{ role: "user", content: { type: "text", text: body } }] }
  })
  server.setRequestHandler("completion/complete", async (request) => {
    note("completion/complete", request.params._meta)
    const { ref, argument } = request.params
    const pool = ref.type === "ref/prompt"
      ? ref.name === "greet" && argument.name === "name" ? NAMES : ref.name === "greet" && argument.name === "style" ? STYLES : []
      : ref.uri === "demo://greeting/{name}" && argument.name === "name"
      ? NAMES
      : ref.uri === "demo://weather/{city}" && argument.name === "city"
      ? CITIES
      : []
    const values = pool.filter((v) => v.toLowerCase().startsWith(argument.value.toLowerCase()))
    return { completion: { values, total: values.length, hasMore: false } }
  })
}

/** Calls one of the {@link surfaceTools}, or `undefined` when `name` is not one of them. */
export const callSurfaceTool = (
  state: SurfaceState,
  servers: Iterable<Server>,
  name: string,
  args: Record<string, unknown>,
  meta: unknown
): CallToolResult | undefined => {
  switch (name) {
    case "bump_counter": {
      state.counter += typeof args.by === "number" ? args.by : 1
      const uri = "demo://counter"
      for (const server of servers) {
        if (state.subscriptions.get(server)?.has(uri) === true || server.getNegotiatedProtocolVersion?.() === "2026-07-28") {
          server.sendResourceUpdated({ uri }).catch(() => {})
        }
      }
      for (const l of state.listeners.resourceUpdated) l(uri)
      return text(String(state.counter))
    }
    case "set_resources": {
      for (const n of strings(args.add)) state.extraResources.add(n)
      for (const n of strings(args.remove)) state.extraResources.delete(n)
      for (const server of servers) server.sendResourceListChanged().catch(() => {})
      for (const l of state.listeners.resourcesChanged) l()
      return text(JSON.stringify(state.resources().map((r) => r.uri)))
    }
    case "set_prompts": {
      if (typeof args.listDelayMs === "number") state.promptsListDelayMs = args.listDelayMs
      for (const n of strings(args.add)) state.dynamicPrompts.add(n)
      for (const n of strings(args.remove)) state.dynamicPrompts.delete(n)
      for (const server of servers) server.sendPromptListChanged().catch(() => {})
      for (const l of state.listeners.promptsChanged) l()
      return text(JSON.stringify(state.prompts().map((p) => p.name)))
    }
    case "trace_context":
      return text(JSON.stringify(traceOf(meta)))
    default:
      return undefined
  }
}

/** Records the trace context of a `tools/call` (the demo server's own handler calls this). */
export const noteToolCall = (state: SurfaceState, meta: unknown): void => {
  const tp = traceOf(meta).traceparent
  if (tp !== undefined) state.traceparents["tools/call"] = tp
}
