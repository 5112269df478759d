/**
 * Per-server tool filters: `keel.tools.allow` / `keel.tools.deny` in a server's config, tool names or
 * globs (`*` any run of characters, `?` one character; everything else literal).
 *
 * ```json
 * { "mcpServers": { "github": { "command": "...", "keel": { "tools": { "allow": ["search_*", "get_*"], "deny": ["*_admin"] } } } } }
 * ```
 *
 * A tool is offered when it matches an `allow` pattern (or there is no `allow`) and no `deny` pattern:
 * deny wins. A filtered-out tool is neither listed (`listTools`, the toolkit) nor callable
 * (`callTool` fails with {@link ToolDeniedError}, before anything is sent).
 *
 * @since 0.3.0
 */
import * as Schema from "effect/Schema"

/**
 * The `keel.tools` section of a server.
 *
 * @since 0.3.0
 * @category config
 */
export const ToolFilterConfig = Schema.Struct({
  allow: Schema.optionalKey(Schema.Array(Schema.String.check(Schema.isNonEmpty()))),
  deny: Schema.optionalKey(Schema.Array(Schema.String.check(Schema.isNonEmpty())))
})

/** @since 0.3.0 @category config */
export type ToolFilterConfig = typeof ToolFilterConfig.Type

/**
 * The tool is filtered out by the server's `keel.tools` config (`rule`: `deny` matched, or `allow`
 * matched nothing). Nothing was sent.
 *
 * @since 0.3.0
 * @category errors
 */
export class ToolDeniedError extends Schema.TaggedError<ToolDeniedError>()("ToolDeniedError", {
  server: Schema.String,
  tool: Schema.String,
  rule: Schema.Literals(["allow", "deny"]),
  message: Schema.String
}) {}

/** A compiled filter: `verdict(name)` is `undefined` when the tool is offered, else the rule that refused it. */
export interface ToolFilter {
  readonly verdict: (tool: string) => "allow" | "deny" | undefined
}

const globToRegExp = (glob: string): RegExp =>
  new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "s")

const matcher = (patterns: ReadonlyArray<string>): (name: string) => boolean => {
  const exact = new Set(patterns.filter((p) => !/[*?]/.test(p)))
  const globs = patterns.filter((p) => /[*?]/.test(p)).map(globToRegExp)
  return (name) => exact.has(name) || globs.some((g) => g.test(name))
}

/**
 * Compiles a `keel.tools` section; `undefined` when it filters nothing (the hot path then skips it).
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (config: ToolFilterConfig | undefined): ToolFilter | undefined => {
  if (config === undefined || (config.allow === undefined && (config.deny === undefined || config.deny.length === 0))) {
    return undefined
  }
  const allow = config.allow !== undefined ? matcher(config.allow) : undefined
  const deny = config.deny !== undefined && config.deny.length > 0 ? matcher(config.deny) : undefined
  return {
    verdict: (tool) => (deny?.(tool) === true ? "deny" : allow !== undefined && !allow(tool) ? "allow" : undefined)
  }
}

/**
 * The tools `filter` offers, in order (the same array when it offers them all).
 *
 * @since 0.3.0
 * @category filtering
 */
export const apply = <T extends { readonly name: string }>(filter: ToolFilter | undefined, tools: ReadonlyArray<T>): ReadonlyArray<T> => {
  if (filter === undefined) return tools
  const kept = tools.filter((t) => filter.verdict(t.name) === undefined)
  return kept.length === tools.length ? tools : kept
}

/**
 * The {@link ToolDeniedError} of a refused tool, or `undefined` when it is offered.
 *
 * @since 0.3.0
 * @category filtering
 */
export const check = (filter: ToolFilter | undefined, server: string, tool: string): ToolDeniedError | undefined => {
  const rule = filter?.verdict(tool)
  if (rule === undefined) return undefined
  return new ToolDeniedError({
    server,
    tool,
    rule,
    message: rule === "deny"
      ? `tool "${tool.slice(0, 120)}" of "${server.slice(0, 120)}" is denied by keel.tools.deny`
      : `tool "${tool.slice(0, 120)}" of "${server.slice(0, 120)}" is not in keel.tools.allow`
  })
}
