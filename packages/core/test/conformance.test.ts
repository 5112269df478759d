/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance` 0.2.0-alpha.12), every non-auth
 * client scenario, run one at a time against a small client built on McpClient (`conformance-client.ts`).
 * The suite's scenario servers listen on all interfaces, so each run happens inside a fresh network
 * namespace that has only loopback (`unshare -n`) when this machine allows it.
 *
 * `list` must show exactly these scenarios besides `auth/*` ones: a suite upgrade that adds a client
 * scenario fails here until it is added.
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

const SCENARIOS = [
  "initialize",
  "tools_call",
  "elicitation-sep1034-client-defaults",
  "sse-retry",
  "request-metadata",
  "sep-2322-client-request-state",
  "http-standard-headers",
  "http-custom-headers",
  "http-invalid-tool-headers",
  "json-schema-ref-no-deref",
  "json-schema-2020-12-preservation",
  "sep-2640-client-no-prefetch",
  "sep-2640-client-verify-digest",
  "sep-2640-client-verify-size",
  "sep-2640-client-verify-frontmatter"
]

describe("MCP conformance suite (client scenarios)", () => {
  it("runs every non-auth client scenario of the installed suite", () => {
    const list = spawnSync(process.execPath, [suite, "list"], { encoding: "utf8", timeout: 60_000 })
    const section = list.stdout.split(/Client scenarios[^\n]*\n/)[1]?.split(/\n\s*\n/)[0] ?? ""
    const names = [...section.matchAll(/^\s*- (\S+)/gm)].map((m) => m[1]!).filter((n) => !n.startsWith("auth/"))
    expect(names.sort()).toEqual([...SCENARIOS].sort())
  }, 60_000)

  for (const scenario of SCENARIOS) {
    it(`passes ${scenario}`, () => {
      const { status, output } = runScenario(scenario)
      expect(output).not.toMatch(/\bFAILURE\b/)
      expect(output, output).not.toMatch(/\bWARNING\b/)
      expect(status, output).toBe(0)
    }, 120_000)
  }
})
