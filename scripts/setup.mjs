#!/usr/bin/env node
// Brings the workspace up on a machine that has only Node 20 and npm:
// runs the pinned pnpm (from package.json's `packageManager`) through npx, which installs the
// pinned Node 22 (`node` dev dependency) into node_modules/.bin. `npm run <script>` puts that
// directory first on PATH, so every later command in the script runs on Node 22.
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync, statSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
const pnpm = pkg.packageManager // e.g. "pnpm@10.34.9"
const marker = join(root, "node_modules", ".modules.yaml")
const lock = join(root, "pnpm-lock.yaml")

const upToDate = existsSync(marker) && existsSync(lock) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs
  && existsSync(join(root, "node_modules", ".bin", "node"))
if (!upToDate || process.env.CI) {
  const frozen = existsSync(lock) ? ["--frozen-lockfile"] : []
  console.error(`[setup] ${pnpm} install ${frozen.join(" ")}`)
  execFileSync("npx", ["-y", pnpm, "install", ...frozen], { cwd: root, stdio: ["ignore", "inherit", "inherit"] })
}
