// @ts-check
import { execFileSync } from "node:child_process"
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
  mutate: [
    "packages/core/src/CircuitBreakerMachine.ts",
    "packages/core/src/CircuitBreaker.ts",
    "packages/core/src/EvictionPolicy.ts",
    "packages/core/src/KeyedCache.ts",
    "packages/core/src/ConnectionPool.ts",
    "packages/core/src/Timeouts.ts"
  ],
  coverageAnalysis: "perTest",
  // A shared 2-core machine: two test-runner processes at most.
  concurrency: 2,
  incremental: true,
  incrementalFile: "mutation/stryker-incremental.json",
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: "reports/mutation/index.html" },
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
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
