/**
 * The vitest config of `npm run mutation` (stryker.config.mjs): only the fast unit tests of core's state
 * machines and hot path (TestClock, fake sessions, model tests against reference models). No real child
 * processes, sockets, examples or conformance: `*.mcp.test.ts`, `McpClient*.test.ts` and the other projects
 * are left out, so each mutant costs well under a second of tests.
 */
import { defineConfig } from "vitest/config"

export const mutationTests = [
  "src/CircuitBreakerMachine.test.ts",
  "src/CircuitBreaker.test.ts",
  "src/CircuitBreaker.model.test.ts",
  "src/CircuitBreaker.contention.test.ts",
  "src/EvictionPolicy.test.ts",
  "src/KeyedCache.test.ts",
  "src/ToolCache.test.ts",
  "src/ConnectionPool.test.ts",
  "src/ConnectionPool.model.test.ts",
  "src/JsonArguments.test.ts",
  // The manager's fused callTool step in-process (demo server over InMemoryTransport, no child process):
  // the only fast test that reaches ConnectionPool.tryLeaseUnsafe and the breaker's sync permit.
  "src/McpClientManager.fused.test.ts",
  "src/*.mutants.test.ts"
]

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "core",
          root: "packages/core",
          include: mutationTests,
          setupFiles: ["../../vitest.mutation.setup.ts"],
          // Lets a test skip what only measures speed (an O(1) check that takes seconds) under mutation.
          env: { KEEL_MUTATION: "1" }
        }
      }
    ],
    // One worker reused across runs: Stryker starts vitest once per mutant run, and a fresh worker per file
    // (import of effect included) would cost more than the tests.
    isolate: false,
    // A mutant that leaves a fiber waiting forever fails its test here, within 5 s, instead of running into
    // Stryker's timeout (which also restarts the test-runner process).
    testTimeout: 5_000,
    hookTimeout: 5_000
  }
})
