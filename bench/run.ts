/**
 * Runs every benchmark in `bench/`, one after another (each in its own process, so one's garbage does not
 * slow the next), then gathers their result files into `bench/RESULTS.md`.
 *
 *   npm run bench                       # all
 *   npm run bench -- manager pool       # only those whose file name contains a word
 *
 * Each benchmark measures its contenders side by side in one run and writes `RESULTS-<name>.md`; this
 * file only concatenates them, with the machine details, so every figure in RESULTS.md comes from a run.
 */
import { spawnSync } from "node:child_process"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { machine } from "./report.ts"

const dir = import.meta.dirname
const filters = process.argv.slice(2)
const benches = readdirSync(dir)
  .filter((f) => f.endsWith(".bench.ts"))
  .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)))
  .sort()

let failed = 0
for (const file of benches) {
  console.log(`\n=== ${file} ===`)
  const run = spawnSync(process.execPath, [join(dir, file), "--write"], { stdio: "inherit", cwd: join(dir, "..") })
  if (run.status !== 0) failed++
}

const order = ["connection-pool", "tool-cache", "circuit-breaker", "prometheus", "manager"]
const sections = readdirSync(dir)
  .filter((f) => /^RESULTS-.+\.md$/.test(f))
  .sort((a, b) => order.findIndex((o) => a.includes(o)) - order.findIndex((o) => b.includes(o)))
const header = [
  "# Keel benchmark results",
  "",
  "Each section below was written by its benchmark (`bench/<name>.bench.ts`) from one run, with the",
  "contenders measured side by side in that run; the machine line under each section says where and when.",
  "The machine is shared and noisy: compare ratios within a section, not absolute numbers across sections.",
  "",
  `Gathered by \`bench/run.ts\`. ${machine()}`,
  ""
]
const body = sections.flatMap((f) => ["", readFileSync(join(dir, f), "utf8").trim(), ""])
if (sections.length > 0) writeFileSync(join(dir, "RESULTS.md"), [...header, ...body].join("\n"))
console.log(`\nwrote bench/RESULTS.md from ${sections.join(", ")}${failed > 0 ? ` (${failed} benchmark(s) failed)` : ""}`)
process.exit(failed > 0 ? 1 : 0)
