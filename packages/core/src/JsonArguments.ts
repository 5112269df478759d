/**
 * Whether a tool call's arguments can be sent as JSON as they are: no cycle, BigInt, function, symbol,
 * `undefined` in an array or non-finite number. `JSON.stringify` would throw on the first two and silently
 * change the others; either way the caller's arguments are at fault, not the server, so
 * `McpClientManager` checks them before anything is sent and reports an `InvalidArgumentsError` at the
 * path {@link unserialisable} names.
 *
 * @example
 * ```ts
 * import * as JsonArguments from "@keel/core/JsonArguments"
 *
 * JsonArguments.serialisable({ a: [1, { b: "x" }] }) // true
 * const self: Record<string, unknown> = {}
 * self.me = self
 * JsonArguments.unserialisable(self) // ["/me", "a circular reference cannot be sent as JSON"]
 * ```
 *
 * @since 0.3.0
 */

/**
 * Why `value` cannot be sent as JSON (a cycle, a BigInt, a function, a symbol, `undefined` in an array, a
 * non-finite number), as `[path, problem]`, or `undefined`. `JSON.stringify` would throw on the first two
 * and silently change the others; either way the caller's arguments are at fault, not the server.
 */
const walk = (value: unknown, path: string, parents: Array<object>): readonly [string, string] | undefined => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined
    case "number":
      return Number.isFinite(value) ? undefined : [path, `${value} is not a JSON number`]
    case "bigint":
      return [path, "a BigInt cannot be sent as JSON"]
    case "function":
    case "symbol":
    case "undefined":
      return [path, `a ${typeof value} cannot be sent as JSON`]
  }
  if (value === null) return undefined
  const o = value as object
  if (typeof (o as { toJSON?: unknown }).toJSON === "function") return undefined // Date and friends
  if (parents.includes(o)) return [path, "a circular reference cannot be sent as JSON"]
  parents.push(o)
  try {
    if (Array.isArray(o)) {
      for (let i = 0; i < o.length; i++) {
        const p = walk(o[i], `${path}/${i}`, parents)
        if (p !== undefined) return p
      }
      return undefined
    }
    for (const key in o) {
      if (!Object.hasOwn(o, key)) continue
      const v = (o as Record<string, unknown>)[key]
      if (v === undefined) continue // dropped by JSON, as an absent key
      const p = walk(v, `${path}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`, parents)
      if (p !== undefined) return p
    }
    return undefined
  } finally {
    parents.pop()
  }
}

/**
 * Whether `value` can be sent as JSON as it is: {@link unserialisable}'s walk without building the path
 * strings (about 2 µs per call for a two-key object), which only a failure needs. `parents` is made on the
 * first nested object (flat arguments allocate nothing).
 */
const sendable = (value: unknown, parents: Array<object> | undefined): boolean => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true
    case "number":
      return Number.isFinite(value)
    case "object":
      break
    default:
      return false
  }
  if (value === null) return true
  const o = value as object
  if (typeof (o as { toJSON?: unknown }).toJSON === "function") return true
  // The chain of objects above a nested one (cycles); the top object starts one only when it has a nested
  // object, so flat arguments allocate nothing.
  let chain = parents
  if (chain !== undefined) {
    if (chain.includes(o)) return false
    chain.push(o)
  }
  if (Array.isArray(o)) {
    for (let i = 0; i < o.length; i++) {
      const v: unknown = o[i]
      if (typeof v === "object" && v !== null) {
        if (!sendable(v, chain ??= [o])) return false
      } else if (!sendable(v, undefined)) return false
    }
  } else {
    for (const key in o) {
      if (!Object.hasOwn(o, key)) continue
      const v = (o as Record<string, unknown>)[key]
      if (v === undefined) continue // dropped by JSON, as an absent key
      if (typeof v === "object" && v !== null) {
        if (!sendable(v, chain ??= [o])) return false
      } else if (!sendable(v, undefined)) return false
    }
  }
  parents?.pop()
  return true
}

/**
 * Why `value` cannot be sent as JSON, as `[path, problem]` (a JSON pointer, `""` for the value itself), or
 * `undefined` when it can.
 *
 * @since 0.3.0
 */
export const unserialisable = (value: unknown): readonly [string, string] | undefined => walk(value, "", [])

/**
 * Whether `value` can be sent as JSON as it is: what {@link unserialisable} checks, without building the
 * path strings (about 2 µs per call for a two-key object), which only a failure needs; flat arguments
 * allocate nothing. The hot path's check.
 *
 * @since 0.3.0
 */
export const serialisable = (value: unknown): boolean => sendable(value, undefined)
