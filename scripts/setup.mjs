#!/usr/bin/env node
// Brings the workspace up on a machine that has only Node 20 and npm, then runs a script on Node 22.
//
//   node scripts/setup.mjs [script.ts|script.mjs [args...]]
//
// 1. Runs the pinned pnpm (package.json `packageManager`) through npx: `pnpm install --frozen-lockfile`.
//    That installs the pinned Node 22 (the `node` dev dependency) into node_modules/node/bin/node.
//    pnpm itself runs on the machine's Node 20, so it is told which Node the workspace really runs on
//    (`node-version`): the packages' `engines` (Node >=22.19) are checked against that one, not Node 20.
//    Known noise of that install is dropped (see NOISE); everything else pnpm prints is passed through.
// 2. Runs the given script with that Node, with its directory and node_modules/.bin first on PATH, so
//    everything it starts (vitest, tsc, demo servers) runs on Node 22 too. The exit code is the script's.
//    Node is started directly (not through pnpm's node_modules/.bin/node shell shim, which neither execs
//    nor forwards signals), and SIGINT/SIGTERM/SIGHUP sent to this process are passed on to it, so
//    `kill -INT <pid>` or Ctrl+C stops a long-running example cleanly.
import { spawn, spawnSync } from "node:child_process"
import { existsSync, readFileSync, statSync } from "node:fs"
import { constants } from "node:os"
import { delimiter, dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
const pnpm = pkg.packageManager // e.g. "pnpm@10.34.9"
const pinnedNode = pkg.devDependencies.node // e.g. "22.23.3"
const bin = join(root, "node_modules", ".bin")
const nodeBin = join(root, "node_modules", "node", "bin")
const node22 = join(nodeBin, "node")
const marker = join(root, "node_modules", ".modules.yaml")
const lock = join(root, "pnpm-lock.yaml")

// Lines of a first install that are noise, each with the reason it is safe to drop.
const NOISE = [
  // pnpm links the `node` package's bin before that package's preinstall has downloaded the binary; the
  // preinstall then creates it and node_modules/.bin/node works (checked below).
  /WARN\s+Failed to create bin at .*node_modules\/node\/.*ENOENT/,
  // The `node` package's preinstall runs npm, which does not know the npm_config_* variables pnpm sets.
  /npm warn Unknown env config/,
  // pnpm's "update available" box: the version is pinned on purpose (package.json packageManager).
  /Update available!|Changelog: https:\/\/pnpm\.io|To update, run:|^\s*[╭╰│]/
]

const upToDate = existsSync(node22) && existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs
if (!upToDate || process.env.CI) {
  console.error(`[setup] npx ${pnpm} install --frozen-lockfile (the first time also downloads Node ${pinnedNode}, ~40 MB)`)
  const install = spawnSync(
    "npx",
    ["-y", pnpm, "install", "--frozen-lockfile", `--config.node-version=${pinnedNode}`, "--config.update-notifier=false"],
    { cwd: root, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }
  )
  for (const [text, out] of [[install.stdout, process.stdout], [install.stderr, process.stderr]]) {
    const kept = (text ?? "").split("\n").filter((line) => !NOISE.some((re) => re.test(line)))
    out.write(kept.join("\n"))
  }
  if (install.status !== 0) {
    console.error(`[setup] pnpm install failed (exit ${install.status ?? install.signal ?? install.error?.message})`)
    process.exit(install.status || 1)
  }
  if (!existsSync(node22)) {
    console.error(`[setup] pnpm install did not produce ${node22}`)
    process.exit(1)
  }
}

const [script, ...args] = process.argv.slice(2)
if (script !== undefined) {
  const env = { ...process.env, PATH: [nodeBin, bin, process.env.PATH ?? ""].join(delimiter) }
  const child = spawn(node22, [join(root, script), ...args], { cwd: root, stdio: "inherit", env })
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => child.kill(signal))
  }
  child.on("error", (e) => {
    console.error(`[setup] could not start ${node22}: ${e.message}`)
    process.exit(1)
  })
  child.on("exit", (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)))
}
