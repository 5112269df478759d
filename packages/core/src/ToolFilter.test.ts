import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import * as ToolFilter from "./ToolFilter.ts"

describe("ToolFilter", () => {
  const tools = ["echo", "add", "search_repos", "search_admin", "get_file", "delete_repo", "a.b", "a*b"].map((name) => ({ name }))
  const names = (f: ToolFilter.ToolFilter | undefined) => ToolFilter.apply(f, tools).map((t) => t.name)

  it("allow and deny by name and glob; deny wins; no filter keeps the same array", () => {
    assert.strictEqual(ToolFilter.make(undefined), undefined)
    assert.strictEqual(ToolFilter.make({ deny: [] }), undefined)
    assert.strictEqual(ToolFilter.apply(undefined, tools), tools)
    assert.deepStrictEqual(names(ToolFilter.make({ allow: ["search_*", "echo"] })), ["echo", "search_repos", "search_admin"])
    assert.deepStrictEqual(names(ToolFilter.make({ allow: ["search_*"], deny: ["*_admin"] })), ["search_repos"])
    assert.deepStrictEqual(names(ToolFilter.make({ deny: ["delete_*", "a?b"] })), ["echo", "add", "search_repos", "search_admin", "get_file"])
    // Regex characters are literal; only * and ? are wild.
    assert.deepStrictEqual(names(ToolFilter.make({ allow: ["a.b"] })), ["a.b"])
    assert.deepStrictEqual(names(ToolFilter.make({ allow: [] })), [])
  })

  it("check gives a typed error naming the rule", () => {
    const f = ToolFilter.make({ allow: ["search_*"], deny: ["*_admin"] })
    assert.strictEqual(ToolFilter.check(f, "gh", "search_repos"), undefined)
    assert.strictEqual(ToolFilter.check(f, "gh", "search_admin")?.rule, "deny")
    assert.strictEqual(ToolFilter.check(f, "gh", "echo")?.rule, "allow")
    assert.strictEqual(ToolFilter.check(f, "gh", "echo")?._tag, "ToolDeniedError")
  })

  it("the config section decodes, and refuses empty patterns", () => {
    const decode = Schema.decodeUnknownSync(ToolFilter.ToolFilterConfig)
    assert.deepStrictEqual(decode({ allow: ["a"], deny: ["b*"] }), { allow: ["a"], deny: ["b*"] })
    assert.throws(() => decode({ allow: [""] }))
    assert.throws(() => decode({ allow: "a" }))
  })
})
