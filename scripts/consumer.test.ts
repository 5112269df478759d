/**
 * The consumer test: Keel as a project outside this workspace gets it.
 *
 * 1. `scripts/pack.mjs` builds @keel/core and @keel/prometheus (tsc → dist/) and packs them with pnpm into
 *    .packs/ (publishConfig applied, `workspace:*` replaced by the version).
 * 2. A scratch project in the OS temp dir (no pnpm, no workspace links, npm_* variables of the outer run
 *    removed) installs the two tarballs with plain `npm install`, plus from the npm registry
 *    `@modelcontextprotocol/server-memory`, `typescript`, `@types/node` and `node@<lowest supported>`
 *    (the lower bound of the packages' `engines`).
 * 3. `consumer/main.mjs` (JavaScript) runs on the repo's Node 22 and on that lowest Node: a McpClientManager
 *    from an `mcpServers` config naming server-memory, PrometheusMetrics, list, two calls, a /metrics scrape.
 * 4. `tsc --noEmit` (NodeNext, strict) type-checks `consumer/typed.mts` and the README's TypeScript snippets
 *    of "Install" and "Use it" against the published .d.ts, with the repo's strict flags; typed.mts fails if
 *    a published type resolves to `any`.
 */
import { type SpawnSyncOptions, spawnSync } from "node:child_process"
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
// @ts-expect-error: a plain .mjs script without types
import { pack } from "./pack.mjs"

const root = join(import.meta.dirname, "..")
const fixtures = join(import.meta.dirname, "consumer")
const corePkg = JSON.parse(readFileSync(join(root, "packages", "core", "package.json"), "utf8"))
/** The lowest Node the published packages claim (`engines.node` is `>=X.Y`), tested as X.Y.0. */
const lowestNode = `${/^>=\s*(\d+\.\d+)/.exec(corePkg.engines.node)![1]}.0`

/** The environment of a process outside the workspace: no npm_* of the `npm test` that started us. */
const outsideEnv = (extra: Record<string, string> = {}) => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_|^NODE_PATH$|^NODE_OPTIONS$|^VITEST|^TEST$/i.test(k))),
  ...extra
}) as NodeJS.ProcessEnv

const run = (command: string, args: ReadonlyArray<string>, options: SpawnSyncOptions) => {
  const started = performance.now()
  const r = spawnSync(command, args, { encoding: "utf8", timeout: 180_000, killSignal: "SIGKILL", ...options })
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  return { status: r.status, signal: r.signal, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? ""), seconds, error: r.error }
}

/** The ```ts blocks of a README section (`## <title>` up to the next `## `). */
const snippets = (readme: string, title: string) => {
  const start = readme.indexOf(`\n## ${title}\n`)
  if (start < 0) return []
  const end = readme.indexOf("\n## ", start + 1)
  const section = readme.slice(start, end < 0 ? undefined : end)
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!)
}

let scratch = ""
const timings: Array<string> = []

describe("consumer (packed tarballs, plain npm, outside the workspace)", () => {
  beforeAll(() => {
    let t = performance.now()
    const tarballs: Array<string> = pack()
    timings.push(`pack ${((performance.now() - t) / 1000).toFixed(1)} s`)
    const tarball = (name: string) => tarballs.find((f) => f.endsWith(`${name}-${corePkg.version}.tgz`))!

    scratch = mkdtempSync(join(tmpdir(), "keel-consumer-"))
    writeFileSync(join(scratch, "package.json"), JSON.stringify({
      name: "keel-consumer",
      private: true,
      type: "module",
      dependencies: {
        "@keel/core": `file:${tarball("keel-core")}`,
        "@keel/prometheus": `file:${tarball("keel-prometheus")}`,
        "@modelcontextprotocol/server-memory": "2026.8.31",
        effect: "4.1.0"
      },
      devDependencies: { "@types/node": "22.20.5", node: lowestNode, typescript: "5.9.3" }
    }, null, 2))
    for (const f of readdirSync(fixtures)) copyFileSync(join(fixtures, f), join(scratch, f))
    writeFileSync(join(scratch, "mcp.json"), JSON.stringify({ mcpServers: {} }))
    const readme = readFileSync(join(root, "README.md"), "utf8")
    snippets(readme, "Install").forEach((s, i) => writeFileSync(join(scratch, `readme-install-${i}.ts`), s))
    snippets(readme, "Use it").forEach((s, i) => writeFileSync(join(scratch, `readme-use-it-${i}.ts`), s))

    // A fresh machine's npm cache is empty, so this downloads everything from the registry; once (in a CI run
    // on 2026-11-30) the registry was so slow that the install was killed at 180 s. A second attempt reuses
    // what the first one cached.
    let install: ReturnType<typeof run> | undefined
    for (let attempt = 1; attempt <= 2 && install?.status !== 0; attempt++) {
      t = performance.now()
      install = run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--no-update-notifier"], { cwd: scratch, env: outsideEnv(), timeout: 300_000 })
      timings.push(`npm install (attempt ${attempt}) ${((performance.now() - t) / 1000).toFixed(1)} s`)
    }
    if (install!.status !== 0) throw new Error(`npm install failed (${install!.status ?? install!.signal}):\n${install!.stdout}\n${install!.stderr}`)
  }, 900_000)

  afterAll(() => {
    console.log(`[consumer] ${timings.join(", ")}`)
    if (scratch !== "" && process.env.KEEL_KEEP_CONSUMER === undefined) rmSync(scratch, { recursive: true, force: true })
  })

  it("installs what users need: dist (JS, .d.ts, maps) and sources, no tests, no workspace: versions", () => {
    for (const name of ["core", "prometheus"]) {
      const dir = join(scratch, "node_modules", "@keel", name)
      const manifest = readFileSync(join(dir, "package.json"), "utf8")
      expect(manifest).not.toContain("workspace:")
      expect(JSON.parse(manifest).exports["."]).toEqual({ types: "./dist/index.d.ts", import: "./dist/index.js" })
      const files = readdirSync(dir, { recursive: true, encoding: "utf8" })
      for (const f of ["dist/index.js", "dist/index.d.ts", "dist/index.js.map", "dist/index.d.ts.map", "src/index.ts"]) {
        expect(files).toContain(f)
      }
      expect(files.filter((f) => /\.test\.|(^|\/)testing(\/|$)|^test\//.test(f))).toEqual([])
    }
  })

  for (const which of ["the repo's Node 22", "the lowest supported Node"] as const) {
    it(`runs a JavaScript consumer on ${which}: mcpServers config, server-memory, list, call, /metrics`, () => {
      const node = which === "the lowest supported Node" ? join(scratch, "node_modules", "node", "bin", "node") : process.execPath
      expect(existsSync(node)).toBe(true)
      const r = run(node, ["main.mjs"], {
        cwd: scratch,
        env: outsideEnv({ KEEL_CONSUMER_MEMORY_FILE: join(scratch, `memory-${Date.now()}.jsonl`) }),
        timeout: 60_000
      })
      timings.push(`main.mjs on Node ${which === "the lowest supported Node" ? lowestNode : process.versions.node} ${r.seconds} s`)
      expect(r.stderr).toBe("")
      expect(r.status).toBe(0)
      const seen = JSON.parse(r.stdout.trim().split("\n").at(-1)!)
      expect(seen.node).toBe(which === "the lowest supported Node" ? `v${lowestNode}` : process.version)
      expect(seen.tools).toContain("read_graph")
      expect(seen.entities).toBe(1)
      expect(seen.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
      expect(seen.series).toHaveLength(2)
      expect(seen.testImport).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED")
    }, 90_000)
  }

  it("type-checks a TypeScript consumer and the README's snippets against the published .d.ts (NodeNext, strict)", () => {
    const ts = readdirSync(scratch).filter((f) => f.endsWith(".ts"))
    expect(ts).toContain("readme-install-0.ts")
    const tsc = join(scratch, "node_modules", "typescript", "bin", "tsc")
    // As `tsc --init` would (strict, skipLibCheck), plus the stricter flags this repo uses. (Checking every
    // .d.ts too, `--skipLibCheck false --lib ES2023,DOM`, also passes; it takes 25 s, so it is not run here.)
    const r = run(process.execPath, [
      tsc, "-p", "tsconfig.json", "--exactOptionalPropertyTypes", "--noUncheckedIndexedAccess", "--verbatimModuleSyntax"
    ], { cwd: scratch, env: outsideEnv() })
    timings.push(`tsc ${r.seconds} s`)
    expect(r.stdout + r.stderr).toBe("")
    expect(r.status).toBe(0)
  }, 120_000)
})
