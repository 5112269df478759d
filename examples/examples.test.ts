/**
 * Every example runs as a smoke test, so none of them rots: each must end by itself with exit code 0,
 * print what it measured, and leave no child process behind.
 */
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const dir = import.meta.dirname
const examples = readdirSync(dir).filter((f) => /^\d\d-.*\.ts$/.test(f)).sort()

/**
 * Demo-server processes whose parent is gone (re-parented to pid 1): what an example that leaked a child
 * leaves behind once it has exited. Children of other test files still have their live parent.
 */
const orphanedDemoServers = (): Array<string> =>
  (spawnSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" }).stdout ?? "").split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((cols) => cols[1] === "1" && cols.slice(2).join(" ").includes("demo-server/src/main.ts"))
    .map((cols) => cols.join(" "))

describe("examples", () => {
  it("has examples to run", () => {
    expect(examples.length).toBeGreaterThan(0)
  })
  for (const file of examples) {
    it(`${file} runs to completion`, () => {
      const before = new Set(orphanedDemoServers())
      const run = spawnSync(process.execPath, [join(dir, file)], { encoding: "utf8", timeout: 120_000, env: { ...process.env, KEEL_EXAMPLE_SMOKE: "1" } })
      expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0)
      expect(run.stdout.trim().split("\n").length).toBeGreaterThan(2)
      const leftovers = orphanedDemoServers().filter((l) => !before.has(l))
      expect(leftovers).toEqual([])
    }, 150_000)
  }
})
