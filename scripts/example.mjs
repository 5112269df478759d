#!/usr/bin/env node
// `npm run example -- <n> [args...]`: runs examples/<n>-*.ts (e.g. `npm run example -- 02`) on the
// workspace's Node 22, in this process (so Ctrl+C / `kill -INT` reach the example's own handler).
// Without an argument it lists the examples.
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "examples")
const examples = readdirSync(dir).filter((f) => /^\d\d-.*\.ts$/.test(f)).sort()
const [wanted, ...args] = process.argv.slice(2)
const file = wanted === undefined ? undefined : examples.find((f) => f === wanted || f.startsWith(wanted.padStart(2, "0")))

if (file === undefined) {
  if (wanted !== undefined) console.error(`no example matches "${wanted}"`)
  console.error(`usage: npm run example -- <number> [args...]\n${examples.map((f) => `  ${f.slice(0, 2)}  ${f}`).join("\n")}`)
  process.exit(wanted === undefined ? 0 : 2)
}
process.argv = [process.argv[0], join(dir, file), ...args]
await import(pathToFileURL(join(dir, file)).href)
