/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance`), client scenarios run one at a
 * time against a small client built on McpClient (`conformance-client.ts`). The suite's scenario servers
 * listen on all interfaces, so each run happens inside a fresh network namespace that has only loopback
 * (`unshare -n`) when this machine allows it.
 */
import { spawnSync } from "node:child_process"
import { createRequire } from "node:module"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const require = createRequire(import.meta.url)
const suite = join(require.resolve("@modelcontextprotocol/conformance/package.json", { paths: [join(import.meta.dirname, "../../..")] }), "..", "dist", "index.js")
const client = join(import.meta.dirname, "conformance-client.ts")

const canIsolate = spawnSync("unshare", ["-n", "sh", "-c", "ip link set lo up"], { encoding: "utf8" }).status === 0

const runScenario = (scenario: string) => {
  const out = mkdtempSync(join(tmpdir(), "keel-conformance-"))
  try {
    const command = [process.execPath, suite, "client", "--command", `${process.execPath} ${client}`, "--scenario", scenario, "--timeout", "30000", "-o", out]
    const quoted = command.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ")
    const run = canIsolate
      ? spawnSync("unshare", ["-n", "sh", "-c", `ip link set lo up && exec ${quoted}`], { encoding: "utf8", timeout: 90_000 })
      : spawnSync(command[0]!, command.slice(1), { encoding: "utf8", timeout: 90_000 })
    return { status: run.status, output: `${run.stdout}\n${run.stderr}` }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

describe("MCP conformance suite (client scenarios)", () => {
  for (const scenario of ["initialize", "tools_call", "sse-retry", "elicitation-sep1034-client-defaults"]) {
    it(`passes ${scenario}`, () => {
      const { status, output } = runScenario(scenario)
      expect(output).not.toMatch(/\bFAILURE\b/)
      expect(output, output).not.toMatch(/\bWARNING\b/)
      expect(status, output).toBe(0)
    }, 120_000)
  }
})
