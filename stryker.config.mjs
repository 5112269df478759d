// @ts-check
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
/**
 * `npm run mutation`: StrykerJS over core's state machines and hot path, with the fast unit tests only
 * (vitest.mutation.config.ts). Not part of `npm test`. Results and reasoning: MUTATION.md.
 *
 * Incremental: the previous result is kept in mutation/stryker-incremental.json (committed), so a rerun only
 * tests mutants in code or tests that changed. `npm run mutation -- --force` retests everything.
 * @type {import("@stryker-mutator/api/core").PartialStrykerOptions}
 */
export default {
  testRunner: "vitest",
  plugins: ["@stryker-mutator/vitest-runner"],
  vitest: { configFile: "vitest.mutation.config.ts", related: false },
  // The pure state machines whole; of the two effectful modules, only the hot path (a call's way through
  // the breaker, a lease's way through the pool). Their config schemas, metric registration, layers and
  // shutdown are left out: they run once, and each mutant there reruns every test.
  mutate: [
    "packages/core/src/CircuitBreakerMachine.ts",
    "packages/core/src/EvictionPolicy.ts",
    "packages/core/src/JsonArguments.ts",
    "packages/core/src/KeyedCache.ts",
    "packages/core/src/Timeouts.ts",
    // defaultClassifier, and hasListeners … execute/record (up to stats)
    between("packages/core/src/CircuitBreaker.ts", "export const defaultClassifier", "const uncounted"),
    between("packages/core/src/CircuitBreaker.ts", "const hasListeners", "const stats = "),
    // now … use/get (sessions, sweep, strategy, pickReady, leaseSlow, check, release)
    between("packages/core/src/ConnectionPool.ts", "const now = ", "const noop = ")
  ],
  coverageAnalysis: "perTest",
  // A shared 2-core machine: two test-runner processes at most.
  concurrency: 2,
  incremental: true,
  incrementalFile: "mutation/stryker-incremental.json",
  reporters: ["clear-text", "progress", "html", "json"],
  // KEEL_MUTATION_REPORTS=<dir> puts the reports elsewhere (two runs at once must not share a folder; the CLI
  // of 10.1.1 has no flag for the reporters' file names).
  htmlReporter: { fileName: `${process.env.KEEL_MUTATION_REPORTS ?? "reports/mutation"}/index.html` },
  jsonReporter: { fileName: `${process.env.KEEL_MUTATION_REPORTS ?? "reports/mutation"}/mutation.json` },
  // The sandbox gets only what the tests load: core's committed sources and tests, plus the root configs
  // (node_modules are symlinked). Untracked scratch files in the tree are left out: they come and go while
  // Stryker copies, and a file that vanishes mid-copy aborts the run.
  ignorePatterns: ["**", ...sandboxFiles().map((file) => `!/${file}`)],
  timeoutMS: 5_000,
  thresholds: { high: 90, low: 85, break: null },
  tempDirName: ".stryker-tmp",
  cleanTempDir: true
}

/** The committed files the mutation tests need, as they are on disk (git ls-files, existing files only). */
function sandboxFiles() {
  const roots = ["package.json", "tsconfig.json", "vitest.mutation.config.ts", "vitest.mutation.setup.ts", "packages/core/package.json", "packages/core/src"]
  const out = execFileSync("git", ["ls-files", "-z", "--", ...roots], { encoding: "utf8" })
  return out.split("\0").filter((file) => file !== "" && !/\.(mcp|faults)\.test\.ts$|\/McpClient[^/]*\.test\.ts$/.test(file))
}

/**
 * `file:start-end`, the lines from the one that starts with `from` to the one before the line that starts
 * with `to` (found when the config loads, so others' edits above do not shift the range); the whole file
 * when a marker is missing, so a rename widens the scope rather than silently dropping it.
 */
function between(file, from, to) {
  const lines = readFileSync(file, "utf8").split("\n")
  const start = lines.findIndex((line) => line.startsWith(from))
  const end = lines.findIndex((line, i) => i > start && line.startsWith(to))
  return start < 0 || end < 0 ? file : `${file}:${start + 1}-${end}`
}
