/**
 * `serialisable` (the hot path's check) and `unserialisable` (the error's path) agree with each other and
 * with `JSON.stringify` on what can be sent: properties over generated values, with cycles placed at random
 * depths, shared (acyclic) references, and the values JSON cannot carry.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as JsonArguments from "./JsonArguments.ts"

type Container = Record<string, unknown> | Array<unknown>

/** Every object and array in `value` with the JSON pointer of its place, parents before children. */
const containers = (value: unknown, path = "", out: Array<readonly [Container, string]> = []) => {
  if (typeof value !== "object" || value === null) return out
  out.push([value as Container, path])
  if (Array.isArray(value)) value.forEach((v, i) => containers(v, `${path}/${i}`, out))
  else for (const [k, v] of Object.entries(value)) containers(v, `${path}/${k.replace(/~/g, "~0").replace(/\//g, "~1")}`, out)
  return out
}

/** A JSON object with at least one nested container (so a cycle can sit below the top). */
const nestedObject = fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 4 }), { minKeys: 1 }).filter((o) =>
  containers(o).length > 1
)

describe("JsonArguments", () => {
  it("JSON values are serialisable, as JSON.stringify agrees", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (v) => {
        assert.isTrue(JsonArguments.serialisable(v))
        assert.isUndefined(JsonArguments.unserialisable(v))
        JSON.stringify(v)
      }),
      { numRuns: 300 }
    )
  })

  it("a cycle at any depth is found, at the pointer of the reference that closes it", () => {
    fc.assert(
      fc.property(nestedObject, fc.nat(), fc.nat(), fc.string({ minLength: 1, maxLength: 4 }), (root, i, j, key) => {
        const all = containers(root)
        // A reference from a container (`from`) back to itself or to one of its ancestors (`to`).
        const [from, fromPath] = all[i % all.length]!
        const ancestors = all.filter(([c, p]) => c === from || fromPath.startsWith(`${p}/`))
        const [to] = ancestors[j % ancestors.length]!
        let at: string
        if (Array.isArray(from)) {
          from.push(to)
          at = `${fromPath}/${from.length - 1}`
        } else {
          const k = `${key}~cycle`
          from[k] = to
          at = `${fromPath}/${k.replace(/~/g, "~0").replace(/\//g, "~1")}`
        }
        assert.isFalse(JsonArguments.serialisable(root))
        const problem = JsonArguments.unserialisable(root)
        assert.isDefined(problem)
        assert.match(problem![1], /circular/)
        assert.throws(() => JSON.stringify(root))
        // The only reference that is not a tree edge: the walk meets it first where it sits.
        assert.strictEqual(problem![0], at)
      }),
      { numRuns: 300 }
    )
  })

  it("the same object twice (no cycle) is fine, as for JSON.stringify", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (shared) => {
        const box = { shared }
        const v = { a: box, b: [box, { c: box }] }
        assert.isTrue(JsonArguments.serialisable(v))
        assert.isUndefined(JsonArguments.unserialisable(v))
      }),
      { numRuns: 100 }
    )
  })

  it("what JSON cannot carry is refused by both, at its place", () => {
    const cases: ReadonlyArray<readonly [unknown, string, RegExp]> = [
      [{ a: 1n }, "/a", /BigInt/],
      [{ a: [1, undefined] }, "/a/1", /undefined/],
      [{ a: { "b/c": () => 1 } }, "/a/b~1c", /function/],
      [{ a: Symbol("s") }, "/a", /symbol/],
      [{ a: [Number.NaN] }, "/a/0", /NaN is not a JSON number/],
      [{ a: Number.POSITIVE_INFINITY }, "/a", /Infinity/]
    ]
    for (const [v, path, problem] of cases) {
      assert.isFalse(JsonArguments.serialisable(v))
      const found = JsonArguments.unserialisable(v)
      assert.strictEqual(found?.[0], path)
      assert.match(found![1], problem)
    }
    // As JSON sends them: absent-like keys; an object with its own `toJSON` (whatever else it holds); only
    // own enumerable keys (an inherited BigInt is not sent).
    const inherited = Object.create({ bad: 1n }) as Record<string, unknown>
    inherited.a = 1
    for (const v of [{ a: undefined, d: new Date(0) }, { d: { toJSON: () => "x", bad: 1n } }, { nested: inherited }]) {
      JSON.stringify(v)
      assert.isTrue(JsonArguments.serialisable(v), JSON.stringify(v))
      assert.isUndefined(JsonArguments.unserialisable(v))
    }
  })

  it("serialisable and unserialisable agree on arbitrary values", () => {
    fc.assert(
      fc.property(fc.anything({ withBigInt: true, withBoxedValues: true, withNullPrototype: true, withSparseArray: true }), (v) => {
        assert.strictEqual(JsonArguments.serialisable(v), JsonArguments.unserialisable(v) === undefined)
      }),
      { numRuns: 500 }
    )
  })
})
