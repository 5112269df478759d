import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const root = join(import.meta.dirname, "..")

describe("workspace", () => {
  it("type-checks every package, example and benchmark (strict, NodeNext)", () => {
    const tsc = spawnSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.json")], {
      cwd: root,
      encoding: "utf8"
    })
    expect(tsc.stdout + tsc.stderr).toBe("")
    expect(tsc.status).toBe(0)
  }, 180_000)

  it("runs on the pinned Node 22, not the machine's Node 20", () => {
    const [major, minor] = process.versions.node.split(".").map(Number)
    expect(major! > 22 || (major === 22 && minor! >= 19)).toBe(true)
  })
})
