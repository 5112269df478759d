/**
 * Import time: what `import "@keel/core"` costs a program, next to the bare SDK client's import and to the
 * floor Keel cannot go under (the Effect modules Keel's code needs plus the SDK client), each measured in a
 * fresh Node process, the contenders interleaved round by round in one run.
 *
 *   export PATH=$PWD/node_modules/.bin:$PATH && node bench/import.bench.ts
 *
 * Keel is measured as a consumer gets it: the built `packages/core/dist` (run `npm run build` first; the
 * benchmark builds it when `dist` is missing or older than `src`). Writes bench/RESULTS-import.md.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { machine, quantile, writeResults } from "./report.ts"

const root = join(import.meta.dirname, "..")
const core = join(root, "packages/core")
const smoke = process.env.KEEL_BENCH_SMOKE === "1"
const ROUNDS = smoke ? 3 : 15

const newest = (dir: string, ext: string): number =>
  Math.max(0, ...readdirSync(dir).filter((f) => f.endsWith(ext)).map((f) => statSync(join(dir, f)).mtimeMs))
const stale = (() => {
  try {
    return newest(join(core, "dist"), ".js") < newest(join(core, "src"), ".ts")
  } catch {
    return true
  }
})()
if (stale) execFileSync(process.execPath, [join(root, "scripts/build.mjs")], { cwd: root, stdio: "inherit" })

/** Every `effect/...` module Keel's built root entry imports statically (its dist files, transitively). */
const effectModulesOfKeel = (): Array<string> => {
  const seen = new Set<string>()
  const modules = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    const text = readFileSync(file, "utf8")
    for (const m of text.matchAll(/^(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)) {
      const spec = m[1]!
      if (/^import type|^export type/.test(m[0])) continue
      if (spec.startsWith("./")) visit(join(file, "..", spec))
      else if (spec.startsWith("effect")) modules.add(spec)
    }
  }
  visit(join(core, "dist/index.js"))
  return [...modules].sort()
}
const effectModules = effectModulesOfKeel()

// Each contender is a module list imported by a fresh process; it prints its own import time (ms).
const contenders: Array<{ readonly label: string; readonly imports: ReadonlyArray<string>; readonly env?: Record<string, string> }> = [
  { label: "bare SDK v2 client (`@modelcontextprotocol/client` + `/stdio`)", imports: ["@modelcontextprotocol/client", "@modelcontextprotocol/client/stdio"] },
  { label: "`effect` (the whole barrel)", imports: ["effect"] },
  {
    label: `floor: the ${effectModules.length} \`effect/*\` modules Keel imports + the SDK client`,
    imports: [...effectModules, "@modelcontextprotocol/client", "@modelcontextprotocol/client/stdio"]
  },
  // What no Effect MCP client can skip: the runtime (`effect/Effect`), config and errors as Schemas
  // (`effect/Schema`, the design card's), and the SDK client.
  { label: "`effect/Effect` + the SDK client", imports: ["effect/Effect", "@modelcontextprotocol/client", "@modelcontextprotocol/client/stdio"] },
  {
    label: "`effect/Effect` + `effect/Schema` + the SDK client",
    imports: ["effect/Effect", "effect/Schema", "@modelcontextprotocol/client", "@modelcontextprotocol/client/stdio"]
  },
  { label: "`@keel/core` (built `dist/index.js`)", imports: [join(core, "dist/index.js")] },
  { label: "`@keel/core` + `@keel/core/McpToolkit` (loads `effect/ai`)", imports: [join(core, "dist/index.js"), join(core, "dist/McpToolkit.js")] }
]
const cacheDir = mkdtempSync(join(tmpdir(), "keel-compile-cache-"))
contenders.push({ label: "`@keel/core` with `NODE_COMPILE_CACHE` (warm cache)", imports: [join(core, "dist/index.js")], env: { NODE_COMPILE_CACHE: cacheDir } })

const importOnce = (imports: ReadonlyArray<string>, env?: Record<string, string>): number => {
  const program = `const t = performance.now(); await Promise.all(${JSON.stringify(imports)}.map((m) => import(m))); console.log(performance.now() - t)`
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", program], { cwd: core, encoding: "utf8", env: { ...process.env, ...env } })
  if (run.status !== 0) throw new Error(`import of ${imports.join(", ")} failed: ${run.stderr}`)
  return Number(run.stdout.trim())
}

// Warm the OS file cache (and the compile cache) once per contender.
for (const c of contenders) importOnce(c.imports, c.env)
const samples = contenders.map(() => [] as Array<number>)
for (let r = 0; r < ROUNDS; r++) contenders.forEach((c, i) => samples[i]!.push(importOnce(c.imports, c.env)))
rmSync(cacheDir, { recursive: true, force: true })

const median = samples.map((s) => quantile(s, 0.5))
const sdk = median[0]!
const floor = median[2]!
const runtimeSchemaSdk = median[4]!
const keel = median[5]!
const ms = (x: number) => `${x.toFixed(0)} ms`
const lines = [
  "## Import time (`bench/import.bench.ts`)",
  "",
  `Each row: a fresh \`node\` process imports the modules and times the \`import()\` (${ROUNDS} rounds, the contenders interleaved`,
  "round by round after one warm-up each; median and range). Keel as a consumer installs it: the built `dist`.",
  "",
  "| import | median | min – max | vs bare SDK |",
  "| --- | ---: | ---: | ---: |",
  ...contenders.map((c, i) =>
    `| ${c.label} | ${ms(median[i]!)} | ${ms(Math.min(...samples[i]!))} – ${ms(Math.max(...samples[i]!))} | ${(median[i]! / sdk).toFixed(2)}× |`
  ),
  "",
  `Keel's own share over the floor: ${ms(keel - floor)} (${ms(keel)} − ${ms(floor)}). Target ≤ 300 ms for \`@keel/core\`: ${keel <= 300 ? "✔" : "✘"} (${ms(keel)}). The runtime, \`Schema\` and the SDK client alone take ${ms(runtimeSchemaSdk)} in this run${runtimeSchemaSdk > 300 ? ", over the target before any other module loads" : ""}.`,
  "",
  `The floor's Effect modules (from \`dist\`'s static imports): ${effectModules.map((m) => `\`${m}\``).join(", ")}.`
]
console.log([...lines, "", machine()].join("\n"))
if (process.argv.includes("--write") || !smoke) writeResults("import", lines)
