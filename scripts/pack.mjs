#!/usr/bin/env node
// `npm run pack`: builds (scripts/build.mjs), then writes one tarball per published package into .packs/
// with pnpm's own `pack`, which applies `publishConfig` (exports/main/types point at dist/) and turns
// `workspace:*` into the real version. Prints the tarballs' paths, one a line, on stdout.
import { execFileSync } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { build, published } from "./build.mjs"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const packs = join(root, ".packs")

export const pack = () => {
  build()
  rmSync(packs, { recursive: true, force: true })
  mkdirSync(packs)
  const pnpm = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).packageManager
  for (const dir of published) {
    execFileSync("npx", ["-y", pnpm, "pack", "--pack-destination", packs], {
      cwd: join(root, "packages", dir),
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, npm_config_update_notifier: "false" }
    })
  }
  return readdirSync(packs).filter((f) => f.endsWith(".tgz")).sort().map((f) => join(packs, f))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    for (const tarball of pack()) console.log(tarball)
  } catch (e) {
    console.error(`[pack] ${e.message}`)
    process.exit(1)
  }
}
