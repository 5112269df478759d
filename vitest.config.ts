import { defineConfig } from "vitest/config"
import { projects } from "./vitest.workspace.ts"

export default defineConfig({
  test: {
    projects,
    // Real child processes and real sockets: give each test room on a shared 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Files run in parallel workers, but the machine has 2 cores: keep it to 2 so timing-sensitive
    // tests (timeouts, crash detection) are not starved.
    maxWorkers: 2
  }
})
