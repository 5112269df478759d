/**
 * The paginated MCP lists (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`):
 * how Keel walks their pages, the caps on a walk, and the typed error past a cap.
 *
 * A walk follows every `nextCursor` until the server stops giving one, a cursor repeats (a server whose
 * cursor never converges), or a cap is hit:
 *
 * - `listMaxPages` (default {@link DEFAULT_MAX_PAGES}, 64 pages, the SDK's own cap);
 * - `listMaxItems` (default {@link DEFAULT_MAX_ITEMS}, 10,000 items).
 *
 * Past a cap the walk fails with {@link ListLimitError}; a partial list is never returned nor cached.
 * The aggregate keeps the first page's `ttlMs` / `cacheScope` hints (SEP-2549).
 *
 * @since 0.3.0
 */
import * as Schema from "effect/Schema"

/** The default cap on the pages of one list walk. @since 0.3.0 @category limits */
export const DEFAULT_MAX_PAGES = 64

/** The default cap on the items of one list walk. @since 0.3.0 @category limits */
export const DEFAULT_MAX_ITEMS = 10_000

/**
 * A list walk hit a cap (`limit`: `pages` or `items`, `max` its value); nothing was returned or cached.
 *
 * @since 0.3.0
 * @category errors
 */
export class ListLimitError extends Schema.TaggedError<ListLimitError>()("ListLimitError", {
  server: Schema.String,
  method: Schema.String,
  limit: Schema.Literals(["pages", "items"]),
  max: Schema.Number,
  message: Schema.String
}) {}

/** The list methods and the key of their items. @since 0.3.0 @category models */
export const ListKeys = {
  "tools/list": "tools",
  "prompts/list": "prompts",
  "resources/list": "resources",
  "resources/templates/list": "resourceTemplates"
} as const

/** A list method. @since 0.3.0 @category models */
export type ListMethod = keyof typeof ListKeys

/** A page as the server answered it. */
interface Page {
  readonly nextCursor?: string | undefined
  readonly [key: string]: unknown
}

/**
 * Walks every page with `fetchPage` (given the cursor, `undefined` first): the aggregate (first page's
 * fields, items of every page, no `nextCursor`), or which cap was hit.
 *
 * @since 0.3.0
 * @category walking
 */
export const walkPages = async <R extends Page>(
  key: string,
  fetchPage: (cursor: string | undefined) => Promise<R>,
  limits: { readonly maxPages: number; readonly maxItems: number }
): Promise<{ readonly _tag: "Done"; readonly result: R } | { readonly _tag: "Limit"; readonly limit: "pages" | "items" }> => {
  const items: Array<unknown> = []
  let first: R | undefined
  let cursor: string | undefined
  const seen = new Set<string>()
  for (let page = 0;; page++) {
    if (page >= limits.maxPages) return { _tag: "Limit", limit: "pages" }
    const result = await fetchPage(cursor)
    if (first === undefined) first = result
    const list = result[key]
    if (Array.isArray(list)) for (const item of list) items.push(item)
    if (items.length > limits.maxItems) return { _tag: "Limit", limit: "items" }
    cursor = typeof result.nextCursor === "string" ? result.nextCursor : undefined
    if (cursor === undefined || seen.has(cursor)) break
    seen.add(cursor)
  }
  const { nextCursor: _, ...rest } = first
  return { _tag: "Done", result: { ...rest, [key]: items } as unknown as R }
}
