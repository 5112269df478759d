/**
 * McpClientManager end to end, against real processes: the demo server (stdio and HTTP) and
 * `@modelcontextprotocol/server-everything` from npm.
 */
import { assert, describe, it } from "@effect/vitest"
import { demoServerEntry, demoStdio } from "@keel/demo-server"
import { Effect, Exit, Fiber, Layer, PubSub, Schedule, Stream } from "effect"
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { McpClientManager } from "./McpClientManager.ts"
import { demoHttpServer, eventually, isRunning, pidsWithMarker, uniqueMarker } from "./testing/processes.ts"

const require = createRequire(import.meta.url)
const everything = require.resolve("@modelcontextprotocol/server-everything/dist/index.js", { paths: [demoServerEntry] })
const filesystem = require.resolve("@modelcontextprotocol/server-filesystem/dist/index.js", { paths: [demoServerEntry] })
const memory = require.resolve("@modelcontextprotocol/server-memory/dist/index.js", { paths: [demoServerEntry] })

const demo = (flags: Parameters<typeof demoStdio>[0] = {}) => ({ type: "stdio", ...demoStdio(flags) })

const statsOf = (server = "demo") =>
  Effect.gen(function*() {
    const m = yield* McpClientManager
    const r = yield* m.callTool(server, "stats")
    return JSON.parse(r.content[0]?.type === "text" ? r.content[0].text : "{}") as {
      listToolsRequests: number
      calls: Record<string, number>
      pid: number
    }
  })

const text = (r: { content: ReadonlyArray<{ type: string; text?: string }> }) => r.content[0]?.text

const manager = (json: unknown) => McpClientManager.layerConfig(json)

describe("McpClientManager", () => {
  it.live("lists (through the cache) and calls tools on several servers", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      assert.deepStrictEqual([...(yield* m.servers)].sort(), ["demo", "everything"])
      const tools = yield* m.listTools("demo")
      assert.include(tools.map((t) => t.name), "echo")
      yield* m.listTools("demo")
      yield* m.listTools("demo")
      assert.strictEqual((yield* statsOf()).listToolsRequests, 1)
      assert.strictEqual(text(yield* m.callTool("demo", "add", { a: 1, b: 2 })), "3")
      const echoed = yield* m.callTool("everything", "echo", { message: "via manager" })
      assert.include(text(echoed), "via manager")
      const status = yield* m.status("demo")
      assert.isTrue(status.connected)
      assert.strictEqual(status.breaker, "Closed")
      assert.isAtLeast(status.pool.total, 1)
      assert.strictEqual(status.tools, tools.length)
      // A third party sharing the pool removes a server: its status says nothing is open (not a defect).
      yield* m.pool.remove("everything")
      const removed = yield* m.status("everything")
      assert.isFalse(removed.connected)
      assert.strictEqual(removed.pool.total, 0)
      assert.strictEqual(removed.breaker, "Closed")
    }).pipe(Effect.provide(manager({
      mcpServers: { demo: demo(), everything: { command: process.execPath, args: [everything, "stdio"] } }
    }))))

  it.live("status shows the negotiated revision: 2026-07-28 with the demo server, an older one when it is pinned, server-everything's", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      for (const server of ["modern", "pinned", "everything"]) yield* m.listTools(server)
      assert.strictEqual((yield* m.status("modern")).protocolVersion, "2026-07-28")
      assert.strictEqual((yield* m.status("pinned")).protocolVersion, "2025-06-18")
      assert.strictEqual((yield* m.status("everything")).protocolVersion, "2025-11-25")
      // And calls work on each revision.
      assert.strictEqual(text(yield* m.callTool("modern", "add", { a: 2, b: 3 })), "5")
      assert.strictEqual(text(yield* m.callTool("pinned", "add", { a: 2, b: 3 })), "5")
    }).pipe(Effect.provide(manager({
      mcpServers: {
        modern: demo(),
        pinned: demo({ protocolVersion: "2025-06-18" }),
        everything: { command: process.execPath, args: [everything, "stdio"] }
      }
    }))))

  it.live("unknown servers and tools are typed errors that list what exists", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const noServer = yield* Effect.flip(m.callTool("nope", "echo", {}))
      assert.strictEqual(noServer._tag, "UnknownServerError")
      if (noServer._tag === "UnknownServerError") assert.deepStrictEqual(noServer.available, ["demo"])
      const noTool = yield* Effect.flip(m.callTool("demo", "no_such_tool", {}))
      assert.strictEqual(noTool._tag, "UnknownToolError")
      if (noTool._tag === "UnknownToolError") assert.include(noTool.available, "echo")
    }).pipe(Effect.provide(manager({ mcpServers: { demo: demo() } }))))

  it.live("arguments that fail the inputSchema are rejected before sending, naming the path", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const bad = yield* Effect.flip(m.callTool("demo", "add", { a: "one", b: 2 }))
      assert.strictEqual(bad._tag, "InvalidArgumentsError")
      if (bad._tag === "InvalidArgumentsError") assert.strictEqual(bad.path, "/a")
      const missing = yield* Effect.flip(m.callTool("demo", "echo", {}))
      assert.strictEqual(missing._tag, "InvalidArgumentsError")
      const extra = yield* Effect.flip(m.callTool("demo", "echo", { message: "x", surprise: true }))
      assert.strictEqual(extra._tag, "InvalidArgumentsError")
      const s = yield* statsOf()
      assert.strictEqual(s.calls.add ?? 0, 0)
      assert.strictEqual(s.calls.echo ?? 0, 0)
      // and the breaker did not count them
      assert.strictEqual((yield* m.status("demo")).breaker, "Closed")
    }).pipe(Effect.provide(manager({
      mcpServers: { demo: { ...demo(), keel: { breaker: { consecutiveFailureThreshold: 1 } } } }
    }))))

  it.live("flaky failures open the breaker; calls then fail fast with CircuitOpenError", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      for (let i = 0; i < 3; i++) {
        const e = yield* Effect.flip(m.callTool("demo", "flaky", { key: "b", failFirst: 100 }))
        assert.strictEqual(e._tag, "McpProtocolError")
      }
      const rejected = yield* Effect.flip(m.callTool("demo", "flaky", { key: "b", failFirst: 100 }))
      assert.strictEqual(rejected._tag, "CircuitOpenError")
      const status = yield* m.status("demo")
      assert.strictEqual(status.breaker, "Open")
      // lastError is the server's last real failure, not the rejection; the rejection carries what opened it.
      assert.strictEqual(status.lastError?.tag, "McpProtocolError")
      if (rejected._tag === "CircuitOpenError") assert.strictEqual((rejected.openedBy as { _tag?: string } | undefined)?._tag, "McpProtocolError")
      // The rejected call never reached the server.
      const breaker = yield* m.breaker("demo")
      yield* breaker.reset
      assert.strictEqual((yield* statsOf()).calls.flaky, 3)
    }).pipe(Effect.provide(manager({
      mcpServers: { demo: { ...demo(), keel: { breaker: { consecutiveFailureThreshold: 3, waitDurationInOpen: 60000 } } } }
    }))))

  it.live("timeouts: per tool from config, per call, reset on progress, and a hard maximum", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const perTool = yield* Effect.flip(m.callTool("demo", "slow", { ms: 5_000 }))
      assert.strictEqual(perTool._tag, "McpTimeoutError")
      if (perTool._tag === "McpTimeoutError") assert.strictEqual(perTool.timeoutMs, 300)
      const perCall = yield* Effect.flip(m.callTool("demo", "slow", { ms: 5_000 }, { timeout: 100 }))
      assert.strictEqual(perCall._tag, "McpTimeoutError")
      if (perCall._tag === "McpTimeoutError") assert.strictEqual(perCall.timeoutMs, 100)
      // 900 ms of work, progress every 100 ms, timeout 300 ms: progress keeps it alive.
      const kept = yield* m.callTool("demo", "slow", { ms: 900, progressEveryMs: 100 })
      assert.strictEqual(text(kept), "slept 900ms")
      // A call that passes onProgress gets reset-on-progress even where the server's config has it off.
      const progress: Array<number> = []
      const viaCall = yield* m.callTool("plain", "slow", { ms: 900, progressEveryMs: 100 }, { timeout: 300, onProgress: (p) => progress.push(p.progress) })
      assert.strictEqual(text(viaCall), "slept 900ms")
      assert.isAtLeast(progress.length, 5)
      // ...but never past the hard maximum (1.5 s), progress or not.
      const started = Date.now()
      const capped = yield* Effect.flip(m.callTool("demo", "slow", { ms: 10_000, progressEveryMs: 100 }))
      assert.strictEqual(capped._tag, "McpTimeoutError")
      assert.isBelow(Date.now() - started, 4_000)
    }).pipe(Effect.provide(manager({
      mcpServers: {
        demo: { ...demo(), keel: { timeouts: { call: 2000, tools: { slow: 300 }, max: 1500, resetOnProgress: true } } },
        plain: demo()
      }
    }))))

  it.live("tools/list_changed refreshes the cached list", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      assert.notInclude((yield* m.listTools("demo")).map((t) => t.name), "weather")
      yield* m.callTool("demo", "set_tools", { add: ["weather"] })
      yield* Effect.flatMap(m.listTools("demo"), (tools) => tools.some((t) => t.name === "weather") ? Effect.void : Effect.fail("stale")).pipe(
        Effect.eventually,
        Effect.timeout(5_000)
      )
      const r = yield* m.callTool("demo", "weather", { message: "sunny" })
      assert.strictEqual(text(r), "sunny")
    }).pipe(Effect.provide(manager({ mcpServers: { demo: demo() } }))))

  it.live("connects and disconnects servers at run time, HTTP included", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const http = yield* demoHttpServer()
      yield* m.connect("remote", { type: "http", url: http.url })
      assert.deepStrictEqual([...(yield* m.servers)].sort(), ["demo", "remote"])
      assert.strictEqual(text(yield* m.callTool("remote", "echo", { message: "over http" })), "over http")
      const dup = yield* Effect.flip(m.connect("remote", { type: "http", url: http.url }))
      assert.strictEqual(dup._tag, "ServerExistsError")
      const badConfig = yield* Effect.flip(m.connect("broken", { type: "http", url: "ftp://x" } as never))
      assert.strictEqual(badConfig._tag, "McpConfigError")
      // A config as written in a file: ${VAR} comes from the environment.
      process.env.KEEL_TEST_DEMO_URL = http.url
      yield* m.connect("fromEnv", { url: "${KEEL_TEST_DEMO_URL}" } as never)
      delete process.env.KEEL_TEST_DEMO_URL
      assert.strictEqual(text(yield* m.callTool("fromEnv", "echo", { message: "via env" })), "via env")
      yield* m.disconnect("fromEnv")
      yield* m.disconnect("remote")
      const gone = yield* Effect.flip(m.callTool("remote", "echo", { message: "x" }))
      assert.strictEqual(gone._tag, "UnknownServerError")
    }).pipe(Effect.scoped, Effect.provide(manager({ mcpServers: { demo: demo() } }))))

  it.live("a crash mid-load recovers: 1,000 calls at 32 concurrent, every call succeeds or fails typed, none hangs", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const firstPid = (yield* statsOf()).pid
      let done = 0
      const outcomes = new Map<string, number>()
      const load = Effect.forEach(
        Array.from({ length: 1_000 }, (_, i) => i),
        (i) =>
          m.callTool("demo", "echo", { message: `m${i}` }).pipe(
            Effect.exit,
            Effect.map((exit) => {
              done++
              const key = Exit.isSuccess(exit) ? "ok" : String((Exit.isFailure(exit) && (exit.cause.reasons[0] as any)?.error?._tag) ?? "defect")
              outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
            })
          ),
        { concurrency: 32, discard: true }
      )
      const fiber = yield* Effect.forkChild(load)
      yield* eventually(() => done >= 200, 20_000, "200 calls done")
      process.kill(firstPid, "SIGKILL")
      yield* Fiber.join(fiber).pipe(Effect.timeout(60_000))
      assert.strictEqual(done, 1_000)
      for (const key of outcomes.keys()) assert.include(["ok", "McpClosedError", "McpConnectError", "McpTimeoutError", "CircuitOpenError", "PoolTimeoutError"], key)
      // Read-only echo calls are retried after a crash, so (nearly) all succeed.
      assert.isAbove(outcomes.get("ok") ?? 0, 900)
      yield* eventually(() => !isRunning(firstPid), 5_000, "killed child reaped")
      const after = yield* statsOf()
      assert.notStrictEqual(after.pid, firstPid)
    }).pipe(Effect.provide(manager({
      mcpServers: { demo: { ...demo(), keel: { pool: { maxConnections: 2 }, breaker: { consecutiveFailureThreshold: 1000, minimumNumberOfCalls: 1000, slidingWindowSize: 1000 } } } }
    }))), 90_000)

  it.live("closing the manager ends every child process", () =>
    Effect.gen(function*() {
      const marker = uniqueMarker("manager-close")
      yield* Effect.gen(function*() {
        const m = yield* McpClientManager
        yield* m.callTool("a", "echo", { message: "x" })
        yield* m.callTool("b", "echo", { message: "x" })
        assert.strictEqual(pidsWithMarker(marker).length, 2)
      }).pipe(Effect.provide(Layer.fresh(manager({ mcpServers: { a: demo({ name: marker }), b: demo({ name: marker }) } }))))
      yield* eventually(() => pidsWithMarker(marker).length === 0, 5_000, "children gone")
    }))

  it.live("drives the npm reference servers: server-filesystem and server-memory, with validation against their schemas", () =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        const dir = realpathSync(mkdtempSync(join(tmpdir(), "keel-fs-")))
        writeFileSync(join(dir, "hello.txt"), "hello from keel")
        return dir
      }),
      (dir) =>
        Effect.gen(function*() {
          const m = yield* McpClientManager
          const listing = yield* m.callTool("fs", "list_directory", { path: dir })
          assert.include(text(listing), "hello.txt")
          const file = yield* m.callTool("fs", "read_text_file", { path: join(dir, "hello.txt") })
          assert.include(text(file), "hello from keel")
          // Outside the allowed directory: the server answers with an error result, typed.
          const denied = yield* Effect.flip(m.callTool("fs", "read_text_file", { path: "/etc/hostname" }))
          assert.strictEqual(denied._tag, "McpToolError")
          // The server's own inputSchema is enforced before sending.
          const bad = yield* Effect.flip(m.callTool("fs", "list_directory", { path: 42 }))
          assert.strictEqual(bad._tag, "InvalidArgumentsError")
          yield* m.callTool("memory", "create_entities", {
            entities: [{ name: "Keel", entityType: "library", observations: ["built on Effect"] }]
          })
          const graph = yield* m.callTool("memory", "read_graph", {})
          assert.include(text(graph), "built on Effect")
        }).pipe(Effect.provide(manager({
          mcpServers: {
            fs: { command: process.execPath, args: [filesystem, dir] },
            memory: { command: process.execPath, args: [memory], env: { MEMORY_FILE_PATH: join(dir, "memory.jsonl") } }
          }
        }))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    ))

  it.live("health checks ping every server; breaker transitions stream from breakerEvents", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      // A subscription taken before the call: no event after this line is missed (no sleep, no race).
      const events = yield* m.registry.subscribe
      yield* Effect.ignore(m.callTool("demo", "flaky", { key: "h", failFirst: 5 }))
      const transition = yield* PubSub.take(events).pipe(
        Effect.repeat({ until: (e) => e._tag === "StateTransition" }),
        Effect.timeout(5_000)
      )
      assert.strictEqual(transition._tag, "StateTransition")
      if (transition._tag === "StateTransition") {
        assert.deepStrictEqual([transition.server, transition.from, transition.to], ["demo", "Closed", "Open"])
      }
      // The manager's stream carries the same events, for this manager's servers.
      const next = yield* Effect.forkChild(m.breakerEvents.pipe(Stream.filter((e) => e._tag === "StateTransition"), Stream.take(1), Stream.runCollect))
      const breaker = yield* m.breaker("demo")
      // Make transitions until the stream (subscribed at some point after the fork) has seen one.
      yield* Effect.andThen(breaker.isolate, breaker.reset).pipe(
        Effect.andThen(Effect.sync(() => next.pollUnsafe())),
        Effect.repeat({ until: (done) => done !== undefined, schedule: Schedule.spaced(10) }),
        Effect.timeout(5_000)
      )
      const collected = yield* Fiber.join(next)
      assert.strictEqual(collected.length, 1)
      yield* Effect.flatMap(m.status("demo"), (s) => s.lastHealthCheck?.ok === true ? Effect.void : Effect.fail("no check yet")).pipe(
        Effect.eventually,
        Effect.timeout(5_000)
      )
    }).pipe(Effect.scoped, Effect.provide(McpClientManager.layerConfig(
      { mcpServers: { demo: { ...demo(), keel: { breaker: { consecutiveFailureThreshold: 1 } } } } },
      { healthCheckInterval: "100 millis" }
    ))))

  it.live("server→client requests reach the plugged-in handlers: sampling, roots, elicitation (server-everything)", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const names = (yield* m.listTools("everything")).map((t) => t.name)
      // server-everything registers these tools only for clients that declare the capability.
      for (const n of ["trigger-sampling-request", "get-roots-list", "trigger-elicitation-request"]) assert.include(names, n)
      const sampled = yield* m.callTool("everything", "trigger-sampling-request", { prompt: "say hi", maxTokens: 10 })
      assert.include(text(sampled), "keel-test-model")
      assert.match(text(sampled) ?? "", /sampled by keel: .*say hi/)
      const roots = yield* Effect.flatMap(Effect.succeed(undefined), () => m.callTool("everything", "get-roots-list", {})).pipe(
        Effect.flatMap((r) => JSON.stringify(r.content).includes("file:///workspace/keel") ? Effect.succeed(r) : Effect.fail("roots not synced yet")),
        Effect.eventually,
        Effect.timeout(5_000)
      )
      assert.include(JSON.stringify(roots.content), "file:///workspace/keel")
      const elicited = yield* m.callTool("everything", "trigger-elicitation-request", {})
      assert.include(JSON.stringify(elicited.content), "accept")
    }).pipe(Effect.provide(McpClientManager.layerConfig(
      { mcpServers: { everything: { command: process.execPath, args: [everything, "stdio"] } } },
      {
        handlers: {
          sampling: (request) =>
            Effect.succeed({
              role: "assistant",
              content: { type: "text", text: `sampled by keel: ${(request as { messages: Array<{ content: { text: string } }> }).messages[0]?.content.text}` },
              model: "keel-test-model",
              stopReason: "endTurn"
            }),
          roots: () => Effect.succeed([{ uri: "file:///workspace/keel", name: "keel" }]),
          elicitation: () => Effect.succeed({ action: "accept", content: { name: "Keel" } })
        }
      }
    ))))

  it.live("a child killed under an in-flight read-only call: the call is retried on a new child and succeeds", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const pid = (yield* statsOf()).pid
      const fiber = yield* Effect.forkChild(m.callTool("demo", "slow", { ms: 1_000 }))
      yield* statsOf().pipe(Effect.flatMap((s) => ((s.calls.slow ?? 0) >= 1 ? Effect.void : Effect.fail("not yet"))), Effect.eventually)
      process.kill(pid, "SIGKILL")
      const result = yield* Fiber.join(fiber).pipe(Effect.timeout(10_000))
      assert.strictEqual(text(result), "slept 1000ms")
      const after = yield* statsOf()
      assert.notStrictEqual(after.pid, pid)
      assert.strictEqual(after.calls.slow, 1) // the retry ran on the new child
    }).pipe(Effect.provide(manager({ mcpServers: { demo: demo() } }))))

  it.live("a session that closes under a call with no readOnly/idempotent hint is not retried", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const error = yield* Effect.flip(m.callTool("demo", "crash", {}))
      assert.strictEqual(error._tag, "McpClosedError")
      // A retry would have started a second child (and crashed it too).
      assert.strictEqual((yield* m.status("demo")).pool.created, 1)
    }).pipe(Effect.provide(manager({ mcpServers: { demo: demo() } }))))

  it.live("retry.times 0 turns retries off", () =>
    Effect.gen(function*() {
      const m = yield* McpClientManager
      const pid = (yield* statsOf()).pid
      const fiber = yield* Effect.forkChild(Effect.flip(m.callTool("demo", "slow", { ms: 10_000 })))
      yield* statsOf().pipe(Effect.flatMap((s) => ((s.calls.slow ?? 0) >= 1 ? Effect.void : Effect.fail("not yet"))), Effect.eventually)
      process.kill(pid, "SIGKILL")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "McpClosedError") // slow is read-only: with retries on, it would have been retried
    }).pipe(Effect.provide(McpClientManager.layerConfig({ mcpServers: { demo: demo() } }, { retry: { times: 0 } }))))
})
