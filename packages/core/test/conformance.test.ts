/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance` 0.2.0-alpha.12), every non-auth
 * client scenario, run one at a time against a small client built on McpClient (`conformance-client.ts`).
 * The suite's scenario servers listen on all interfaces, so each run happens inside a fresh network
 * namespace that has only loopback (`unshare -n`) when this machine allows it.
 *
 * `list` must show exactly these scenarios besides `auth/*` ones: a suite upgrade that adds a client
 * scenario fails here until it is added.
 *
 * Every `auth/*` scenario the installed suite lists runs too, one at a time, through Keel's own client over
 * `McpClientManager` and `McpAuth` (`conformance-auth-client.ts`). A scenario that fails because of the
 * suite itself goes into `suiteBugs` with the reason, and is shown to fail the SDK's reference client
 * (`conformance-reference-client.ts`) the same way.
 */
import { spawn, spawnSync } from "node:child_process"
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

// ---------------------------------------------------------------------------------------------------------
// Auth scenarios (`auth/*`): every one the installed suite lists, through Keel's own client
// (`conformance-auth-client.ts`: McpClientManager, a server entry with an `auth` section per scenario), one at a time, each at
// the newest spec revision it lists (extension scenarios at the suite's default).
// ---------------------------------------------------------------------------------------------------------

const authClient = join(import.meta.dirname, "conformance-auth-client.ts")
const referenceClient = join(import.meta.dirname, "conformance-reference-client.ts")
/** `auth/<name>` → the revision to run it at (`undefined` for extensions), from `conformance list --client`. */
const authScenarios = (): Array<readonly [string, string | undefined]> => {
  const listed = spawnSync(process.execPath, [suite, "list", "--client"], { encoding: "utf8", timeout: 60_000 }).stdout
  return [...listed.matchAll(/^\s+- (auth\/\S+) \[([^\]]*)\]/gm)].map(([, name, versions]) => {
    const dated = versions!.split(",").filter((v) => /^\d{4}-\d{2}-\d{2}$/.test(v)).sort()
    return [name!, dated.at(-1)] as const
  })
}

/**
 * Scenarios that fail because of the suite itself, each shown to fail the SDK's own reference client
 * (`conformance-reference-client.ts`) the same way. None with 0.2.0-alpha.12: 0.1.16's
 * `auth/2025-03-26-oauth-metadata-backcompat` mock served a wrong `issuer` (it failed the reference
 * client too); the newer suite fixed it, and it passes here.
 */
const suiteBugs: Record<string, string> = {}

/** Runs one scenario (its own suite process, in its own loopback-only namespace when possible). */
const runAuthScenario = (client: string, scenario: string, version: string | undefined) =>
  new Promise<{ readonly status: number | null; readonly output: string }>((resolve) => {
    const out = mkdtempSync(join(tmpdir(), "keel-conformance-"))
    const command = [
      process.execPath, suite, "client", "--command", `${process.execPath} ${client}`, "--scenario", scenario,
      ...(version !== undefined ? ["--spec-version", version] : []), "--timeout", "30000", "-o", out
    ]
    const quoted = command.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ")
    const child = canIsolate
      ? spawn("unshare", ["-n", "sh", "-c", `ip link set lo up && exec ${quoted}`])
      : spawn(command[0]!, command.slice(1))
    let output = ""
    child.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")))
    child.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")))
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000)
    child.on("close", (status) => {
      clearTimeout(timer)
      rmSync(out, { recursive: true, force: true })
      resolve({ status, output })
    })
  })

describe("MCP conformance suite (client auth scenarios, through McpClientManager + McpAuth)", () => {
  const scenarios = authScenarios()
  it("the suite lists auth scenarios", () => {
    expect(scenarios.length).toBeGreaterThanOrEqual(22)
  })
  // One at a time (the tests of a file run in order).
  for (const [scenario, version] of scenarios) {
    const bug = suiteBugs[scenario]
    it(`${bug === undefined ? "passes" : "fails (suite bug, the reference client too)"} ${scenario}${version !== undefined ? ` @ ${version}` : ""}`, async () => {
      const { status, output } = await runAuthScenario(authClient, scenario, version)
      if (bug !== undefined) {
        expect(status, `${scenario} passes now: remove it from suiteBugs (${bug})`).not.toBe(0)
        expect((await runAuthScenario(referenceClient, scenario, version)).status, "the reference client fails it too").not.toBe(0)
        return
      }
      expect(output).not.toMatch(/\bFAILURE\b/)
      expect(output, output).not.toMatch(/\bWARNING\b/)
      expect(status, output).toBe(0)
    }, 120_000)
  }
})
