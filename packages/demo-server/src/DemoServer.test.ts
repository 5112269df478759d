import { describe, expect, it } from "vitest"
import { Client } from "@modelcontextprotocol/client"
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio"
import { demoStdio } from "./launch.ts"
import { parseOptions, servedProtocolVersions, servesModern } from "./options.ts"

describe("demo server options", () => {
  it("parses start-up options and rejects bad ones by name", () => {
    const o = parseOptions(["--page-size", "3", "--startup-delay-ms", "50", "--exit-at-start", "2", "--list-cache-scope", "private"])
    expect(o).toMatchObject({ transport: "stdio", host: "127.0.0.1", pageSize: 3, startupDelayMs: 50, exitAtStart: 2, listCacheScope: "private" })
    expect(() => parseOptions(["--page-size", "-1"])).toThrow(/--page-size/)
    expect(() => parseOptions(["--transport", "ws"])).toThrow(/--transport/)
  })

  it("speaks 2026-07-28 and every older revision by default; --protocol-version pins one", () => {
    expect(parseOptions([]).protocolVersion).toBeUndefined()
    expect(servedProtocolVersions(parseOptions([]))[0]).toBe("2026-07-28")
    expect(servesModern(parseOptions([]))).toBe(true)
    const pinned = parseOptions(["--protocol-version", "2025-06-18"])
    expect(servedProtocolVersions(pinned)).toEqual(["2025-06-18"])
    expect(servesModern(pinned)).toBe(false)
    expect(() => parseOptions(["--protocol-version", "2030-01-01"])).toThrow(/--protocol-version/)
  })
})

describe("demo server flaky tool", () => {
  it("fails deterministically: the same seed gives the same outcomes on every run", async () => {
    const outcomes: Array<Array<boolean>> = []
    for (let run = 0; run < 2; run++) {
      const client = new Client({ name: "t", version: "1" })
      await client.connect(new StdioClientTransport({ ...demoStdio(), stderr: "ignore" }))
      const results: Array<boolean> = []
      for (let i = 0; i < 20; i++) {
        const r = await client.callTool({ name: "flaky", arguments: { failRate: 0.5, seed: 7, as: "isError" } })
        results.push(r.isError === true)
      }
      const pattern: Array<boolean> = []
      for (let i = 0; i < 6; i++) {
        const r = await client.callTool({ name: "flaky", arguments: { key: "p", pattern: "FFS", as: "isError" } })
        pattern.push(r.isError === true)
      }
      expect(pattern).toEqual([true, true, false, true, true, false])
      await client.close()
      outcomes.push(results)
    }
    expect(outcomes[0]).toEqual(outcomes[1])
    expect(outcomes[0]!.filter(Boolean).length).toBeGreaterThan(3)
    expect(outcomes[0]!.filter((x) => !x).length).toBeGreaterThan(3)
  })
})

describe("demo server work tool", () => {
  it("burns about `ms` of the server's CPU per call, so calls on one process run one after another", async () => {
    const client = new Client({ name: "t", version: "1" })
    await client.connect(new StdioClientTransport({ ...demoStdio(), stderr: "ignore" }))
    try {
      const t0 = performance.now()
      const results = await Promise.all([0, 1, 2, 3].map(() => client.callTool({ name: "work", arguments: { ms: 50 } })))
      const elapsed = performance.now() - t0
      for (const r of results) expect((r.content as Array<{ text: string }>)[0]!.text).toMatch(/^worked 50ms/)
      // one single-threaded process: four 50 ms bursts of CPU cannot overlap
      expect(elapsed).toBeGreaterThanOrEqual(195)
      await expect(client.callTool({ name: "work", arguments: { ms: -1 } })).rejects.toThrow(/ms must be/)
    } finally {
      await client.close()
    }
  })
})
