/**
 * Multi-server orchestration (the tutorial series' next step), on one `McpClientManager`:
 *
 * - several servers: two demo servers over stdio, one over Streamable HTTP, and
 *   `@modelcontextprotocol/server-everything` from npm;
 * - a sequential chain: each step's output feeds the next step, on another server;
 * - a parallel fan-out to every server at once;
 * - three error strategies: fail fast, collect all, and retry with a fallback server.
 *
 * Every figure printed is measured in this run. Real servers join the fan-out unchanged: pass an
 * `mcpServers` config file (`npm run example -- 06 mcp.json`) or set `GITHUB_TOKEN`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { loadConfigFile, McpClientManager, type ServerConfig, type ServerConfigInput } from "@keel/core"
import { demoServerEntry, demoStdio, spawnDemoHttp } from "@keel/demo-server"
import { Console, Effect, Result, Schedule } from "effect"
import { createRequire } from "node:module"

const require = createRequire(import.meta.url)
const everything = require.resolve("@modelcontextprotocol/server-everything/dist/index.js", { paths: [demoServerEntry] })

const textOf = (r: { readonly content: ReadonlyArray<{ readonly type: string; readonly text?: string }> }) => r.content[0]?.text ?? ""
const since = (t: number) => `${(performance.now() - t).toFixed(1)} ms`

const program = (extra: Record<string, ServerConfigInput | ServerConfig>) => Effect.gen(function*() {
  const mcp = yield* McpClientManager
  for (const [name, config] of Object.entries(extra)) yield* mcp.connect(name, config)
  yield* Console.log(`servers: ${(yield* mcp.servers).join(", ")}`)

  // 1. Sequential chain: add on "math", the sum echoed by "text", then by "everything".
  let t = performance.now()
  const sum = textOf(yield* mcp.callTool("math", "add", { a: 19, b: 23 }))
  const echoed = textOf(yield* mcp.callTool("text", "echo", { message: `the answer is ${sum}` }))
  const relayed = textOf(yield* mcp.callTool("everything", "echo", { message: echoed }))
  yield* Console.log(`\n1. chain math.add → text.echo → everything.echo: "${relayed}" (${since(t)}, including the first connect to each server)`)

  // 2. Parallel fan-out: every server at once (echo where there is one, else its tool count).
  t = performance.now()
  const answers = yield* Effect.forEach(
    yield* mcp.servers,
    (server) =>
      Effect.flatMap(mcp.listTools(server), (tools) =>
        tools.some((x) => x.name === "echo")
          ? Effect.map(mcp.callTool(server, "echo", { message: `ping ${server}` }), (r) => `${server}: ${textOf(r)}`)
          : Effect.succeed(`${server}: ${tools.length} tools`)).pipe(
          Effect.catch((e) => Effect.succeed(`${server}: ${e._tag} ${e.message}`))
        ),
    { concurrency: "unbounded" }
  )
  yield* Console.log(`\n2. fan-out to ${answers.length} servers in ${since(t)}:\n   ${answers.join("\n   ")}`)

  // 3a. Fail fast: the first failure interrupts the rest.
  t = performance.now()
  const failFast = yield* Effect.all([
    mcp.callTool("math", "slow", { ms: 2_000 }),
    mcp.callTool("text", "fail", { kind: "protocol", code: -32001, message: "text is down" }),
    mcp.callTool("remote", "slow", { ms: 2_000 })
  ], { concurrency: "unbounded" }).pipe(Effect.flip)
  yield* Console.log(`\n3a. fail fast: ${failFast._tag} "${failFast.message}" after ${since(t)} (the two 2 s calls were cancelled)`)

  // 3b. Collect all: every outcome, successes and typed failures side by side.
  t = performance.now()
  const all = yield* Effect.all([
    mcp.callTool("math", "add", { a: 1, b: 1 }),
    mcp.callTool("text", "fail", { kind: "isError", message: "no such file" }),
    mcp.callTool("remote", "echo", { message: "fine" }),
    mcp.callTool("math", "add", { a: "x", b: 1 }),
    mcp.callTool("nowhere", "echo", { message: "?" })
  ], { concurrency: "unbounded", mode: "result" })
  yield* Console.log(`\n3b. collect all (${since(t)}):`)
  for (const r of all) {
    yield* Console.log(Result.isSuccess(r) ? `   ok    ${textOf(r.success)}` : `   error ${r.failure._tag}: ${r.failure.message.slice(0, 90)}`)
  }

  // 3c. Retry with fallback: "flaky" fails its first 3 calls; retry twice, then fall back to another server.
  t = performance.now()
  let attempts = 0
  const primary = Effect.suspend(() => {
    attempts++
    return mcp.callTool("math", "flaky", { key: "orchestration", failFirst: 3 })
  })
  const withFallback = primary.pipe(
    Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 2 }),
    Effect.map((r) => `math.flaky: ${textOf(r)}`),
    Effect.catch((e) =>
      Effect.map(mcp.callTool("remote", "echo", { message: "answer from the fallback" }), (r) =>
        `math failed ${attempts} times (${e._tag}); fallback remote.echo: ${textOf(r)}`)
    )
  )
  yield* Console.log(`\n3c. retry with fallback: ${yield* withFallback} (${since(t)})`)
  attempts = 0
  const second = yield* primary.pipe(Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 2 }))
  yield* Console.log(`    and once the server recovers: ${textOf(second)} after ${attempts} attempt(s)`)
})

const main = Effect.gen(function*() {
  const http = yield* Effect.acquireRelease(Effect.promise(() => spawnDemoHttp()), (s) => Effect.promise(() => s.stop()))
  // Real servers, when asked for: the servers of a config file, or GitHub's with GITHUB_TOKEN.
  const file = process.argv[2]
  const extra: Record<string, ServerConfigInput | ServerConfig> = {}
  if (file !== undefined) {
    for (const s of (yield* loadConfigFile(file)).servers) extra[s.name] = s.config
  }
  if (process.env.GITHUB_TOKEN !== undefined) {
    extra.github = {
      type: "stdio",
      command: "npx",
      args: ["-y", "@modelcontextprotocol/server-github"],
      env: { GITHUB_PERSONAL_ACCESS_TOKEN: process.env.GITHUB_TOKEN }
    }
  }
  yield* program(extra).pipe(
    Effect.provide(McpClientManager.layerConfig({
      mcpServers: {
        math: demoStdio({ name: "math" }),
        text: demoStdio({ name: "text" }),
        remote: { url: http.url },
        everything: { command: process.execPath, args: [everything, "stdio"] }
      },
      keel: { defaults: { breaker: { consecutiveFailureThreshold: 10 } } }
    }))
  )
})

NodeRuntime.runMain(Effect.scoped(main))
