/**
 * The demo MCP server: a low-level `Server` from `@modelcontextprotocol/server` 2.4 with tools that let
 * tests, examples and benchmarks reproduce every behaviour a production client must survive: slow calls
 * that honour cancellation, deterministic failures, `isError` results and protocol errors, big payloads,
 * a tool list that changes at run time (`tools/list_changed`), paginated `tools/list`, crashes and garbage.
 *
 * One `DemoState` is shared by every session of a process (stdio has one; HTTP has one per client).
 */
import { ProtocolError, Server } from "@modelcontextprotocol/server"
import type { CallToolResult, Tool } from "@modelcontextprotocol/server"
import { type DemoServerOptions, servedProtocolVersions } from "./options.ts"
import { callSurfaceTool, noteToolCall, registerSurface, surfaceCapabilities, SurfaceState, surfaceTools } from "./surface.ts"

/** JSON-RPC "invalid params": bad arguments, unknown tool, bad cursor. */
export const INVALID_PARAMS = -32602
/** JSON-RPC "internal error": what `flaky` and `fail` (protocol) answer by default. */
export const INTERNAL_ERROR = -32603

const text = (t: string): CallToolResult => ({ content: [{ type: "text", text: t }] })

const obj = (properties: NonNullable<Tool["inputSchema"]["properties"]>, required: Array<string> = []): Tool["inputSchema"] => ({
  type: "object",
  properties,
  required,
  additionalProperties: false
})

/** The built-in tools, as advertised in `tools/list`. */
export const builtinTools: ReadonlyArray<Tool> = [
  {
    name: "echo",
    annotations: { readOnlyHint: true },
    description: "Returns its message.",
    inputSchema: obj({ message: { type: "string" } }, ["message"])
  },
  {
    name: "add",
    annotations: { readOnlyHint: true },
    description: "Adds two numbers.",
    inputSchema: obj({ a: { type: "number" }, b: { type: "number" } }, ["a", "b"])
  },
  {
    name: "slow",
    annotations: { readOnlyHint: true },
    description: "Waits `ms` milliseconds, honouring cancellation. Sends progress every `progressEveryMs` when the caller asks for progress.",
    inputSchema: obj({ ms: { type: "integer", minimum: 0 }, progressEveryMs: { type: "integer", minimum: 1 } }, ["ms"])
  },
  {
    name: "work",
    annotations: { readOnlyHint: true },
    description: "Burns `ms` milliseconds of this server process's CPU (a busy loop), then answers: a tool whose cost is server CPU, not waiting.",
    inputSchema: obj({ ms: { type: "number", minimum: 0, maximum: 60_000 } }, ["ms"])
  },
  {
    name: "flaky",
    description: "Fails deterministically: the first `failFirst` calls, or by `pattern` (F fails, S succeeds, cycled), or at `failRate` with `seed`. Calls are counted per `key`. Fails with a protocol error, or an isError result when `as` is `isError`.",
    inputSchema: obj({
      key: { type: "string" },
      failFirst: { type: "integer", minimum: 0 },
      pattern: { type: "string", pattern: "^[FS]+$" },
      failRate: { type: "number", minimum: 0, maximum: 1 },
      seed: { type: "integer" },
      as: { type: "string", enum: ["protocol", "isError"] }
    })
  },
  {
    name: "fail",
    description: "Always fails: an isError result (`kind: isError`) or a JSON-RPC error (`kind: protocol`, with `code`).",
    inputSchema: obj({
      kind: { type: "string", enum: ["isError", "protocol"] },
      code: { type: "integer" },
      message: { type: "string" }
    }, ["kind"])
  },
  {
    name: "big",
    annotations: { readOnlyHint: true },
    description: "Returns a text payload of `bytes` bytes.",
    inputSchema: obj({ bytes: { type: "integer", minimum: 0, maximum: 64 * 1024 * 1024 } }, ["bytes"])
  },
  {
    name: "set_tools",
    description: "Adds or removes dynamic tools at run time and sends notifications/tools/list_changed.",
    inputSchema: obj({ add: { type: "array", items: { type: "string" } }, remove: { type: "array", items: { type: "string" } } })
  },
  {
    name: "stats",
    annotations: { readOnlyHint: true },
    description: "Counters of this server process: tools/list walks and pages, calls per tool, cancellations, sessions, pid.",
    inputSchema: obj({})
  },
  {
    name: "crash",
    description: "Kills this server process with SIGKILL without answering (a crash mid-call).",
    inputSchema: obj({})
  },
  {
    name: "garbage",
    description: "Writes a non-JSON line to stdout (stdio transport), then answers normally.",
    inputSchema: obj({})
  }
]

/** Counters a test can read through the `stats` tool. */
export interface DemoStats {
  /** `tools/list` requests without a cursor, i.e. list walks started. */
  listToolsRequests: number
  /** Every `tools/list` request, pages included. */
  listToolsPages: number
  calls: Record<string, number>
  cancelled: number
  sessions: number
  pid: number
}

/** State shared by every session of one demo server process. */
export class DemoState {
  readonly options: DemoServerOptions
  readonly servers = new Set<Server>()
  /**
   * Called when the tool list changes, besides `notifications/tools/list_changed` on every live `Server`: the
   * stateless 2026-07-28 HTTP entry has no long-lived instance and publishes to its `subscriptions/listen`
   * streams through here.
   */
  readonly toolsChangedListeners = new Set<() => void>()
  /** Resources, prompts, completions, subscriptions and received trace context (see `surface.ts`). */
  readonly surface = new SurfaceState()
  readonly stats: DemoStats = { listToolsRequests: 0, listToolsPages: 0, calls: {}, cancelled: 0, sessions: 0, pid: process.pid }
  private readonly dynamic = new Map<string, Tool>()
  private readonly removed = new Set<string>()
  private readonly flakyCounts = new Map<string, number>()
  private toolsCache: ReadonlyArray<Tool> | undefined

  constructor(options: DemoServerOptions) {
    this.options = options
  }

  /** The advertised tool list: built-ins, generated extras, dynamic tools, minus removed ones. */
  tools(): ReadonlyArray<Tool> {
    if (this.toolsCache !== undefined) return this.toolsCache
    const all: Array<Tool> = []
    for (const t of builtinTools) if (!this.removed.has(t.name)) all.push(t)
    // `--surface`: the tools that change resources and prompts and echo trace context (off by default, so
    // the built-in tool list other tests count stays as it is).
    if (this.options.surface) for (const t of surfaceTools) if (!this.removed.has(t.name)) all.push(t)
    for (let i = 0; i < this.options.extraTools; i++) {
      const name = `tool_${String(i).padStart(5, "0")}`
      if (!this.removed.has(name)) {
        all.push({ name, description: `Generated tool ${i}: echoes its message.`, inputSchema: obj({ message: { type: "string" } }) })
      }
    }
    for (const t of this.dynamic.values()) all.push(t)
    this.toolsCache = all
    return all
  }

  setTools(add: ReadonlyArray<string>, remove: ReadonlyArray<string>): void {
    for (const name of add) {
      this.removed.delete(name)
      if (!builtinTools.some((t) => t.name === name)) {
        this.dynamic.set(name, { name, description: "Dynamic tool: echoes its message.", inputSchema: obj({ message: { type: "string" } }) })
      }
    }
    for (const name of remove) {
      this.dynamic.delete(name)
      this.removed.add(name)
    }
    this.toolsCache = undefined
    for (const server of this.servers) {
      server.sendToolListChanged().catch(() => {})
    }
    for (const listener of this.toolsChangedListeners) listener()
  }

  /** Advances the call counter of a flaky key and returns the call's 0-based index. */
  nextFlaky(key: string): number {
    const n = this.flakyCounts.get(key) ?? 0
    this.flakyCounts.set(key, n + 1)
    return n
  }
}

/** A small deterministic PRNG (mulberry32): the same seed and index give the same draw on every run. */
const draw = (seed: number, index: number): number => {
  let t = (seed + Math.imul(index + 1, 0x6d2b79f5)) >>> 0
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const invalid = (message: string): ProtocolError => new ProtocolError(INVALID_PARAMS, message)

const num = (args: Record<string, unknown>, key: string): number => {
  const v = args[key]
  if (typeof v !== "number" || !Number.isFinite(v)) throw invalid(`${key} must be a number`)
  return v
}

const abortable = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    signal.addEventListener("abort", onAbort, { once: true })
  })

/**
 * Builds one session's `Server`, registered in `state` so list changes reach it. It answers the revisions
 * of `--protocol-version` (all of them by default, 2026-07-28 first).
 *
 * `perRequest`: an instance of the stateless 2026-07-28 HTTP entry, which lives for one HTTP request; it is
 * not counted as a session and not registered for list changes (those go to `toolsChangedListeners`).
 */
export const createDemoServer = (state: DemoState, perRequest = false): Server => {
  const server = new Server(
    { name: state.options.name, version: "0.1.0" },
    { capabilities: { tools: { listChanged: true }, ...surfaceCapabilities }, supportedProtocolVersions: servedProtocolVersions(state.options) }
  )
  registerSurface(server, state.surface, perRequest, state.options.pageSize)
  if (!perRequest) {
    state.servers.add(server)
    state.stats.sessions++
  }
  const previousOnClose = server.onclose
  server.onclose = () => {
    state.servers.delete(server)
    state.surface.subscriptions.delete(server)
    previousOnClose?.()
  }

  server.setRequestHandler("tools/list", async (request) => {
    state.stats.listToolsPages++
    const cursor = request.params?.cursor
    if (cursor === undefined) state.stats.listToolsRequests++
    const tools = state.tools()
    const size = state.options.pageSize
    const hints = {
      ...(state.options.listTtlMs !== undefined ? { ttlMs: state.options.listTtlMs } : {}),
      ...(state.options.listCacheScope !== undefined ? { cacheScope: state.options.listCacheScope } : {})
    }
    if (size === 0) return { tools: [...tools], ...hints }
    const start = cursor === undefined ? 0 : Number.parseInt(cursor, 10)
    if (!Number.isInteger(start) || start < 0 || start > tools.length) throw invalid(`bad cursor ${cursor}`)
    const end = start + size
    return {
      tools: tools.slice(start, end),
      ...(end < tools.length ? { nextCursor: String(end) } : {}),
      ...hints
    }
  })

  server.setRequestHandler("tools/call", async (request, ctx): Promise<CallToolResult> => {
    const name = request.params.name
    const args = (request.params.arguments ?? {}) as Record<string, unknown>
    const known = state.tools().some((t) => t.name === name)
    if (!known) throw invalid(`Unknown tool: ${name}`)
    state.stats.calls[name] = (state.stats.calls[name] ?? 0) + 1
    const meta = request.params._meta ?? ctx.mcpReq._meta
    noteToolCall(state.surface, meta)
    const surfaced = callSurfaceTool(state.surface, state.servers, name, args, meta)
    if (surfaced !== undefined) return surfaced
    const signal = ctx.mcpReq.signal
    switch (name) {
      case "echo": {
        if (typeof args.message !== "string") throw invalid("message must be a string")
        return text(args.message)
      }
      case "add":
        return text(String(num(args, "a") + num(args, "b")))
      case "slow": {
        const ms = num(args, "ms")
        const every = typeof args.progressEveryMs === "number" ? args.progressEveryMs : undefined
        const token = ctx.mcpReq._meta?.progressToken
        try {
          if (every !== undefined && token !== undefined) {
            let waited = 0
            while (waited < ms) {
              const step = Math.min(every, ms - waited)
              await abortable(step, signal)
              waited += step
              await ctx.mcpReq.notify({ method: "notifications/progress", params: { progressToken: token, progress: waited, total: ms } })
            }
          } else {
            await abortable(ms, signal)
          }
        } catch (e) {
          state.stats.cancelled++
          throw e
        }
        return text(`slept ${ms}ms`)
      }
      case "work": {
        const ms = num(args, "ms")
        if (ms < 0 || ms > 60_000) throw invalid("ms must be between 0 and 60000")
        const until = performance.now() + ms
        let spins = 0
        while (performance.now() < until) spins++
        return text(`worked ${ms}ms (${spins} spins)`)
      }
      case "flaky": {
        const key = typeof args.key === "string" ? args.key : "default"
        const i = state.nextFlaky(key)
        let fails = false
        if (typeof args.failFirst === "number") fails = i < args.failFirst
        else if (typeof args.pattern === "string" && args.pattern.length > 0) fails = args.pattern[i % args.pattern.length] === "F"
        else if (typeof args.failRate === "number") fails = draw(typeof args.seed === "number" ? args.seed : 0, i) < args.failRate
        if (!fails) return text(`ok #${i}`)
        if (args.as === "isError") return { ...text(`flaky failure #${i}`), isError: true }
        throw new ProtocolError(INTERNAL_ERROR, `flaky failure #${i}`)
      }
      case "fail": {
        const message = typeof args.message === "string" ? args.message : "requested failure"
        if (args.kind === "isError") return { ...text(message), isError: true }
        if (args.kind === "protocol") throw new ProtocolError(typeof args.code === "number" ? args.code : INTERNAL_ERROR, message)
        throw invalid("kind must be isError or protocol")
      }
      case "big":
        return text("x".repeat(num(args, "bytes")))
      case "set_tools": {
        const list = (v: unknown): Array<string> => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [])
        state.setTools(list(args.add), list(args.remove))
        return text(JSON.stringify(state.tools().map((t) => t.name)))
      }
      case "stats":
        return text(JSON.stringify({ ...state.stats, traceparents: state.surface.traceparents, requests: state.surface.requests }))
      case "crash":
        process.kill(process.pid, "SIGKILL")
        return await new Promise<never>(() => {})
      case "garbage":
        if (state.options.transport === "stdio") process.stdout.write("this is not JSON-RPC\n")
        return text("wrote garbage")
      default:
        // Generated and dynamic tools echo.
        return text(typeof args.message === "string" ? args.message : name)
    }
  })
  return server
}
