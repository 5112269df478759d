#!/usr/bin/env node
// `npm run build`: compiles each published package's sources (tests and src/testing excluded) with plain
// `tsc` into its dist/: ES modules, .d.ts, and source maps for both. Relative `./X.ts` imports become
// `./X.js` (`rewriteRelativeImportExtensions`). @keel/core first: @keel/prometheus compiles against its
// dist/*.d.ts. Only the tarballs point at dist/; the workspace keeps running the .ts sources.
import { spawnSync } from "node:child_process"
import { rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
/** The published packages, in build order. `@keel/demo-server` is private (see its package.json). */
export const published = ["core", "prometheus"]

export const build = () => {
  for (const dir of published) {
    const pkg = join(root, "packages", dir)
    rmSync(join(pkg, "dist"), { recursive: true, force: true })
    const started = performance.now()
    const tsc = spawnSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(pkg, "tsconfig.build.json")], {
      cwd: pkg,
      stdio: "inherit"
    })
    if (tsc.status !== 0) throw new Error(`tsc -p packages/${dir}/tsconfig.build.json failed (exit ${tsc.status})`)
    console.error(`[build] packages/${dir}/dist in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    build()
  } catch (e) {
    console.error(`[build] ${e.message}`)
    process.exit(1)
  }
}
