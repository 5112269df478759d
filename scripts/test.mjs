#!/usr/bin/env node
// The README's test command (`npm test`) lands here after `scripts/setup.mjs`.
// Runs every vitest project (the typecheck is one of the tests, see scripts/typecheck.test.ts),
// writes vitest's JSON report, and ends with one plain line: `N passed, N failed`.
import { spawn } from "node:child_process"
import { readFileSync, rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { ensureRedisServer } from "./redis-server.mjs"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const report = join(root, ".vitest-results.json")
rmSync(report, { force: true })

// The scale-out tests and examples/10 start real redis-server processes: install Debian's package when it
// is missing and we are root (apt-get); otherwise say why not (those tests then fail with the same advice).
ensureRedisServer()

// vitest's own entry on this Node (not node_modules/.bin/vitest, whose pnpm shim goes through the `node` shell
// shim that does not pass signals on); SIGINT/SIGTERM/SIGHUP sent to this process are passed on to vitest.
const vitest = join(root, "node_modules", "vitest", "vitest.mjs")
const child = spawn(process.execPath, [vitest, "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)], {
  cwd: root,
  stdio: "inherit"
})
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal))
const run = await new Promise((resolve) => child.on("exit", (status, signal) => resolve({ status, signal })))

let passed = 0
let failed = 0
try {
  const json = JSON.parse(readFileSync(report, "utf8"))
  passed = json.numPassedTests
  failed = json.numFailedTests
  // A file that fails to load, or whose setup (beforeAll) fails with no test of its own failing, still fails
  // the run: it counts as one failure.
  failed += json.testResults.filter((r) => r.status === "failed" && !r.assertionResults.some((a) => a.status === "failed")).length
} catch (e) {
  console.error(`[test] no vitest JSON report (${e.message})`)
  failed = Math.max(failed, 1)
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(run.status === 0 && failed === 0 && passed > 0 ? 0 : 1)
