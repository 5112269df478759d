/**
 * Shared by the benchmarks: quantiles, the machine's details, and writing a results section.
 */
import { execSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { join } from "node:path"

/** The `q` quantile (0..1) of samples (nearest rank). */
export const quantile = (xs: ReadonlyArray<number>, q: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!
}

/** One line describing the machine the numbers came from. */
export const machine = (): string => {
  const nproc = execSync("nproc").toString().trim()
  return `Machine: ${cpus()[0]?.model ?? "unknown CPU"}, nproc ${nproc}, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}, ${new Date().toISOString()}`
}

/** Writes `bench/RESULTS-<name>.md` with the lines and the machine details. */
export const writeResults = (name: string, lines: ReadonlyArray<string>): void => {
  const file = join(import.meta.dirname, `RESULTS-${name}.md`)
  writeFileSync(file, [...lines, "", machine(), ""].join("\n"))
  console.log(`wrote ${file}`)
}
