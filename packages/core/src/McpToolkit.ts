/**
 * An `effect/ai` `Toolkit` over `McpClientManager`: every tool of the chosen servers, with handlers that
 * call through the manager, so an agent built on `LanguageModel` gets Keel's pool, cache, breaker,
 * timeouts, retries and metrics under every tool call.
 *
 * ```ts
 * import { LanguageModel } from "effect/ai"
 *
 * const mcp = yield* McpClientManager
 * const toolkit = McpToolkit.toolkit(mcp, { servers: ["github", "docs"] })
 * // An Effect: each model turn builds the toolkit from the (cached) tool lists, so tool changes
 * // (`tools/list_changed`) reach the next turn with no rebuild by hand.
 * const response = yield* LanguageModel.generateText({ prompt: "...", toolkit })
 * ```
 *
 * - **Names** are valid for model providers (the SEP-986 set `[A-Za-z0-9_-]`, 1 to 64 characters) and
 *   unique across servers: `<server>__<tool>` when that is valid and unambiguous (the server name has no
 *   `__` and does not end with `_`, so the first `__` splits it back), otherwise a readable prefix cut to
 *   fit plus `_` and an 8-hex-digit FNV-1a hash of `server` and `tool` (stable across runs). Effect's own
 *   `mcp_<server>_<tool>`-style prefixing collides (`a_b` + `c` and `a` + `b_c`); this does not. A
 *   `naming` function replaces the scheme (its names are checked; an invalid or duplicate one fails).
 * - **Failures reach the model**: the tools use `failureMode: "return"`, so a tool's `isError` result and
 *   Keel's typed errors (`CircuitOpenError`, `McpTimeoutError`, `InvalidArgumentsError`, ...) come back to
 *   the model as a failure result `{ error, message }` (`error` is `tool_error` or the error's tag)
 *   instead of failing the agent.
 *
 * @since 0.3.0
 */
import type { CallToolResult, Tool as McpTool } from "@modelcontextprotocol/client"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Tool, Toolkit } from "effect/ai"
import { displayName, type UnknownServerError } from "./ManagerErrors.ts"
import type { ListToolsError, Manager } from "./McpClientManager.ts"

/** A tool's failure as the model sees it. @since 0.3.0 @category models */
export const ToolFailure = Schema.Struct({ error: Schema.String, message: Schema.String })

/** @since 0.3.0 @category models */
export type ToolFailure = typeof ToolFailure.Type

/** The `effect/ai` tool of one MCP tool. @since 0.3.0 @category models */
export type KeelTool = Tool.Tool<string, {
  readonly parameters: typeof Schema.Unknown
  readonly success: typeof Schema.String
  readonly failure: typeof ToolFailure
  readonly failureMode: "return"
}>

/** The toolkit with its handlers. @since 0.3.0 @category models */
export type KeelToolkit = Toolkit.WithHandler<Record<string, KeelTool>>

/**
 * A name was invalid for model providers or used twice (from a `naming` function).
 *
 * @since 0.3.0
 * @category errors
 */
export class ToolNameError extends Schema.TaggedError<ToolNameError>()("ToolNameError", {
  server: Schema.String,
  tool: Schema.String,
  name: Schema.String,
  message: Schema.String
}) {}

/**
 * What the toolkit needs of a manager: its servers, their (cached, filtered) tool lists, and `callTool`.
 *
 * @since 0.3.0
 * @category models
 */
export type ToolSource = Pick<Manager, "servers" | "listTools" | "callTool">

/** Options of {@link toolkit}. @since 0.3.0 @category models */
export interface ToolkitOptions {
  /** The servers whose tools to offer (default: every server of the manager). */
  readonly servers?: ReadonlyArray<string> | undefined
  /** The model-facing name of a tool (default {@link toolName}). */
  readonly naming?: ((server: string, tool: string) => string) | undefined
  /** Passed to `listTools` and `callTool` (keeps `private` tool lists apart). */
  readonly credential?: string | undefined
}

/** The SEP-986 tool-name character set, 1 to 64 characters. @since 0.3.0 @category naming */
export const VALID_NAME = /^[A-Za-z0-9_-]{1,64}$/

/** 32-bit FNV-1a of a string, as 8 hex digits. */
const fnv1a = (s: string): string => {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h.toString(16).padStart(8, "0")
}

const clean = (s: string): string => s.replace(/[^A-Za-z0-9_-]/g, "_")

/**
 * The default model-facing name of `tool` on `server` (see the module doc).
 *
 * @since 0.3.0
 * @category naming
 */
export const toolName = (server: string, tool: string): string => {
  const plain = `${server}__${tool}`
  const unambiguous = !server.includes("__") && !server.endsWith("_") && server.length > 0 && tool.length > 0
  if (unambiguous && VALID_NAME.test(plain)) return plain
  const hash = fnv1a(`${server}\u0000${tool}`)
  const readable = clean(`${server}__${tool}`).slice(0, 64 - 9)
  return `${readable}_${hash}`
}

/** The model-readable text of a tool result: text blocks as they are, other content as JSON. */
const resultText = (result: CallToolResult): string => {
  const parts = result.content.map((c) => (c.type === "text" ? c.text : JSON.stringify(c)))
  if (parts.length === 0 && result.structuredContent !== undefined) return JSON.stringify(result.structuredContent)
  return parts.join("\n")
}

const failureOf = (e: { readonly _tag: string; readonly message: string; readonly text?: string }): ToolFailure =>
  e._tag === "McpToolError"
    ? { error: "tool_error", message: e.text ?? e.message }
    : { error: e._tag, message: e.message }

interface Built {
  readonly lists: ReadonlyArray<ReadonlyArray<McpTool>>
  readonly toolkit: KeelToolkit
}

/**
 * The toolkit of the manager's tools, as an Effect that builds it from the current (cached) tool lists;
 * a built toolkit is reused while every list is the same object (a cache hit), so a model turn with no
 * tool change costs one cache lookup per server.
 *
 * It never fails, as `LanguageModel` asks of a toolkit: a server whose tool list cannot be had this turn
 * (breaker open, server down, unknown) is left out of this turn with a warning, and the model works with
 * the others; a `naming` function that gives an invalid or duplicate name is a defect
 * ({@link ToolNameError}). {@link toolkitStrict} fails instead.
 *
 * @since 0.3.0
 * @category constructors
 */
export const toolkit = (manager: ToolSource, options: ToolkitOptions = {}): Effect.Effect<KeelToolkit> =>
  build(manager, options, true).pipe(Effect.catchTag("ToolNameError", Effect.die)) as Effect.Effect<KeelToolkit>

/**
 * As {@link toolkit}, but a server whose tool list fails fails the whole toolkit.
 *
 * @since 0.3.0
 * @category constructors
 */
export const toolkitStrict = (
  manager: ToolSource,
  options: ToolkitOptions = {}
): Effect.Effect<KeelToolkit, ListToolsError | UnknownServerError | ToolNameError> => build(manager, options, false)

const build = (
  manager: ToolSource,
  options: ToolkitOptions,
  lenient: boolean
): Effect.Effect<KeelToolkit, ListToolsError | UnknownServerError | ToolNameError> => {
  let last: Built | undefined
  const naming = options.naming ?? toolName
  const listOptions = options.credential !== undefined ? { credential: options.credential } : undefined
  return Effect.gen(function*() {
    const servers = options.servers ?? (yield* manager.servers)
    const lists: Array<ReadonlyArray<McpTool>> = []
    for (const server of servers) {
      const list = manager.listTools(server, listOptions)
      lists.push(
        lenient
          ? yield* list.pipe(Effect.catch((e) =>
            Effect.as(
              Effect.logWarning(`toolkit: the tools of "${displayName(server)}" are left out of this turn: ${e.message}`),
              [] as ReadonlyArray<McpTool>
            )
          ))
          : yield* list
      )
    }
    if (last !== undefined && last.lists.length === lists.length && last.lists.every((l, i) => l === lists[i])) {
      return last.toolkit
    }
    const tools: Array<KeelTool> = []
    const handlers: Record<string, (params: unknown) => Effect.Effect<string, ToolFailure>> = Object.create(null)
    for (let i = 0; i < servers.length; i++) {
      const server = servers[i]!
      for (const descriptor of lists[i]!) {
        const name = naming(server, descriptor.name)
        if (!VALID_NAME.test(name) || Object.hasOwn(handlers, name)) {
          return yield* new ToolNameError({
            server,
            tool: descriptor.name,
            name,
            message: `model tool name "${displayName(name)}" for ${displayName(server)}/${displayName(descriptor.name)} is ${
              VALID_NAME.test(name) ? "used twice" : "not 1-64 characters of A-Z a-z 0-9 _ -"
            }`
          })
        }
        tools.push(
          Tool.dynamic(name, {
            parameters: descriptor.inputSchema as never,
            description: descriptor.description ?? descriptor.title ?? `${descriptor.name} on ${server}`,
            success: Schema.String,
            failure: ToolFailure,
            failureMode: "return"
          }).annotate(Tool.Strict, false) as unknown as KeelTool
        )
        const tool = descriptor.name
        handlers[name] = (params) =>
          typeof params !== "object" || params === null || Array.isArray(params)
            ? Effect.fail({ error: "InvalidArgumentsError", message: "tool arguments must be a JSON object" })
            : manager.callTool(server, tool, params as Record<string, unknown>, options.credential !== undefined ? { credential: options.credential } : undefined).pipe(
              Effect.map(resultText),
              Effect.mapError(failureOf)
            )
      }
    }
    const kit = Toolkit.make(...tools)
    const withHandlers = yield* kit.pipe(Effect.provideContext(yield* kit.toHandlers(handlers as never)))
    last = { lists, toolkit: withHandlers as unknown as KeelToolkit }
    return last.toolkit
  })
}
