/**
 * Cold start per server: from nothing running to every server's tool list, for N demo servers over stdio
 * (a child process each), a bare SDK v2 program against Keel's manager, in one process, the contenders
 * interleaved round by round. Wall time and this process's CPU (`process.cpuUsage`: the parent's share;
 * the children's spawn and start-up are the same for both and not in it).
 *
 * - bare SDK: N `Client`s with `StdioClientTransport`, connected and `listTools()` concurrently (the SDK's
 *   default negotiation: `initialize` only), then closed;
 * - Keel: `McpClientManager.layerConfig` with the N servers, `listTools` on each concurrently (pool, cache,
 *   breaker, metrics; `auto` negotiation with the probe on the session's own pipe), then the runtime disposed.
 *
 *   export PATH=$PWD/node_modules/.bin:$PATH && node bench/cold-start.bench.ts
 *
 * Writes bench/RESULTS-cold-start.md. Every number comes from this run.
 */
import { Client } from "@modelcontextprotocol/client"
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio"
import { demoStdio } from "@keel/demo-server"
import { Effect, Layer, ManagedRuntime } from "effect"
import { McpClientManager } from "../packages/core/src/McpClientManager.ts"
import { quantile, writeResults } from "./report.ts"

const smoke = process.env.KEEL_BENCH_SMOKE === "1"
const SIZES = smoke ? [4] : [10, 30]
const ROUNDS = smoke ? 2 : 3

interface Run { readonly wallMs: number; readonly cpuMs: number }

const measure = async (f: () => Promise<void>): Promise<Run> => {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await f()
  const c = process.cpuUsage(c0)
  return { wallMs: performance.now() - t0, cpuMs: (c.user + c.system) / 1000 }
}

const bareRun = (n: number) =>
  measure(async () => {
    const clients = await Promise.all(Array.from({ length: n }, async () => {
      const client = new Client({ name: "bench", version: "1" })
      await client.connect(new StdioClientTransport({ ...demoStdio(), stderr: "ignore" }))
      const { tools } = await client.listTools()
      if (tools.length === 0) throw new Error("no tools")
      return client
    }))
    await Promise.all(clients.map((c) => c.close()))
  })

const keelRun = (n: number) =>
  measure(async () => {
    const names = Array.from({ length: n }, (_, i) => `demo${i}`)
    const rt = ManagedRuntime.make(
      McpClientManager.layerConfig({ mcpServers: Object.fromEntries(names.map((name) => [name, demoStdio()])) }) as Layer.Layer<McpClientManager, never>
    )
    await rt.runPromise(McpClientManager.use((m) =>
      Effect.forEach(names, (name) =>
        Effect.flatMap(m.listTools(name), (tools) => tools.length === 0 ? Effect.die("no tools") : Effect.void), { concurrency: "unbounded", discard: true })
    ))
    await rt.dispose()
  })

// Warm-up: module loading and JIT for both paths.
await bareRun(2)
await keelRun(2)

const results = new Map<string, Array<Run>>()
for (let r = 0; r < ROUNDS; r++) {
  for (const n of SIZES) {
    for (const [name, run] of [["bare", bareRun], ["keel", keelRun]] as const) {
      const key = `${name}/${n}`
      results.set(key, [...(results.get(key) ?? []), await run(n)])
    }
  }
}
const med = (key: string, f: (r: Run) => number) => quantile(results.get(key)!.map(f), 0.5)
const ms = (x: number) => `${x.toFixed(0)} ms`
const lines = [
  "## Cold start per server (`bench/cold-start.bench.ts`)",
  "",
  `From nothing running to every server's tool list: N demo servers over stdio, each its own child process; ${ROUNDS} rounds,`,
  "the contenders interleaved; medians. CPU is this (parent) process's user + system time; the children's start-up",
  "is the same for both and not in it. Bare: SDK `Client` + `StdioClientTransport`, connect + `listTools`",
  "concurrently (default negotiation, `initialize` only). Keel: `McpClientManager.layerConfig`, `listTools` on each",
  "concurrently (`auto` negotiation, probe on the session's own pipe), then the runtime disposed.",
  "",
  "| servers | bare wall | Keel wall | Keel / bare wall | bare parent CPU | Keel parent CPU | Keel − bare CPU per server |",
  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...SIZES.map((n) => {
    const bw = med(`bare/${n}`, (r) => r.wallMs)
    const kw = med(`keel/${n}`, (r) => r.wallMs)
    const bc = med(`bare/${n}`, (r) => r.cpuMs)
    const kc = med(`keel/${n}`, (r) => r.cpuMs)
    return `| ${n} | ${ms(bw)} | ${ms(kw)} | ${(kw / bw).toFixed(2)}× | ${ms(bc)} | ${ms(kc)} | ${((kc - bc) / n).toFixed(1)} ms |`
  })
]
console.log(lines.join("\n"))
writeResults("cold-start", lines)
process.exit(0)
