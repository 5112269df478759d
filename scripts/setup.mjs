#!/usr/bin/env node
// Brings the workspace up on a machine that has only Node 20 and npm, then runs a script on Node 22.
//
//   node scripts/setup.mjs [script.ts|script.mjs [args...]]
//
// 1. Runs the pinned pnpm (package.json `packageManager`) through npx: `pnpm install --frozen-lockfile`.
//    That installs the pinned Node 22 (the `node` dev dependency) into node_modules/.bin.
// 2. Runs the given script with that Node, with node_modules/.bin first on PATH, so everything it starts
//    (vitest, tsc, demo servers) runs on Node 22 too. The exit code is the script's.
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, readFileSync, statSync } from "node:fs"
import { delimiter, dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
const pnpm = pkg.packageManager // e.g. "pnpm@10.34.9"
const bin = join(root, "node_modules", ".bin")
const node22 = join(bin, "node")
const marker = join(root, "node_modules", ".modules.yaml")
const lock = join(root, "pnpm-lock.yaml")

const upToDate = existsSync(node22) && existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs
if (!upToDate || process.env.CI) {
  console.error(`[setup] npx ${pnpm} install --frozen-lockfile`)
  execFileSync("npx", ["-y", pnpm, "install", "--frozen-lockfile"], { cwd: root, stdio: ["ignore", "inherit", "inherit"] })
}

const [script, ...args] = process.argv.slice(2)
if (script !== undefined) {
  const env = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ""}` }
  const run = spawnSync(node22, [join(root, script), ...args], { cwd: root, stdio: "inherit", env })
  process.exit(run.status ?? 1)
}
