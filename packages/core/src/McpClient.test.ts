/**
 * McpClient against real processes: the demo server over stdio and Streamable HTTP, and
 * `@modelcontextprotocol/server-everything` from npm. Children are killed for real.
 */
import { assert, describe, it } from "@effect/vitest"
import { createDemoServer, DemoState, demoServerEntry, demoStdio, parseOptions } from "@keel/demo-server"
import { InMemoryTransport } from "@modelcontextprotocol/client"
import { Duration, Effect, Fiber, Option, Stream } from "effect"
import { createRequire } from "node:module"
import { McpClient, type McpConnection } from "./McpClient.ts"
import type { ServerConfig } from "./ServerConfig.ts"
import { demoHttpServer, eventually, isRunning, pidsWithMarker, uniqueMarker } from "./testing/processes.ts"

const stdio = (flags: Parameters<typeof demoStdio>[0] = {}): ServerConfig => ({ type: "stdio", ...demoStdio(flags) })

const stats = (c: McpConnection) =>
  Effect.map(c.callTool("stats"), (r) => {
    const first = r.content[0]
    return JSON.parse(first?.type === "text" ? first.text : "{}") as {
      listToolsRequests: number
      listToolsPages: number
      calls: Record<string, number>
      cancelled: number
    }
  })

const textOf = (r: { content: ReadonlyArray<{ type: string; text?: string }> }) => r.content[0]?.text

/** The behaviour every transport must have, run once per transport. */
const conversation = (label: string, connect: (flags?: Parameters<typeof demoStdio>[0]) => Effect.Effect<McpConnection, unknown, import("effect").Scope.Scope>) =>
  describe(`McpClient over ${label}`, () => {
    it.live("initializes, lists tools and calls them", () =>
      Effect.gen(function*() {
        const c = yield* connect()
        assert.strictEqual(c.serverInfo.name, "keel-demo")
        assert.isTrue(c.capabilities.tools?.listChanged === true)
        const { tools } = yield* c.listTools()
        const names = tools.map((t) => t.name)
        for (const n of ["echo", "add", "slow", "flaky", "fail", "big", "set_tools"]) assert.include(names, n)
        assert.strictEqual(textOf(yield* c.callTool("echo", { message: "hello" })), "hello")
        assert.strictEqual(textOf(yield* c.callTool("add", { a: 2, b: 40 })), "42")
        yield* c.ping()
        assert.isTrue(c.isOpen())
      }).pipe(Effect.scoped))

    it.live("walks every page of a paginated tools/list", () =>
      Effect.gen(function*() {
        const c = yield* connect({ pageSize: 3, extraTools: 8 })
        const { tools } = yield* c.listTools()
        assert.strictEqual(tools.length, 19) // 11 built-ins + 8 generated
        assert.strictEqual(new Set(tools.map((t) => t.name)).size, 19)
        const s = yield* stats(c)
        assert.strictEqual(s.listToolsRequests, 1)
        assert.strictEqual(s.listToolsPages, 7)
      }).pipe(Effect.scoped))

    it.live("times out a slow call with McpTimeoutError and cancels it on the server", () =>
      Effect.gen(function*() {
        const c = yield* connect()
        const error = yield* Effect.flip(c.callTool("slow", { ms: 10_000 }, { timeout: 200 }))
        assert.strictEqual(error._tag, "McpTimeoutError")
        if (error._tag === "McpTimeoutError") assert.strictEqual(error.timeoutMs, 200)
        const s = yield* stats(c).pipe(
          Effect.flatMap((s) => (s.cancelled >= 1 ? Effect.succeed(s) : Effect.fail("not yet"))),
          Effect.eventually
        )
        assert.strictEqual(s.cancelled, 1)
        assert.isTrue(c.isOpen())
      }).pipe(Effect.scoped))

    it.live("interrupting a call cancels the request on the server", () =>
      Effect.gen(function*() {
        const c = yield* connect()
        const fiber = yield* Effect.forkChild(c.callTool("slow", { ms: 10_000 }))
        yield* stats(c).pipe(Effect.flatMap((s) => ((s.calls.slow ?? 0) >= 1 ? Effect.void : Effect.fail("not yet"))), Effect.eventually)
        yield* Fiber.interrupt(fiber)
        const s = yield* stats(c).pipe(
          Effect.flatMap((s) => (s.cancelled >= 1 ? Effect.succeed(s) : Effect.fail("not yet"))),
          Effect.eventually
        )
        assert.strictEqual(s.cancelled, 1)
        assert.strictEqual(textOf(yield* c.callTool("echo", { message: "still fine" })), "still fine")
      }).pipe(Effect.scoped))

    it.live("maps isError results and JSON-RPC errors to typed errors", () =>
      Effect.gen(function*() {
        const c = yield* connect()
        const toolError = yield* Effect.flip(c.callTool("fail", { kind: "isError", message: "disk full" }))
        assert.strictEqual(toolError._tag, "McpToolError")
        if (toolError._tag === "McpToolError") assert.strictEqual(toolError.text, "disk full")
        const asValue = yield* c.callToolResult("fail", { kind: "isError", message: "disk full" })
        assert.isTrue(asValue.isError)
        const protocol = yield* Effect.flip(c.callTool("fail", { kind: "protocol", code: -32001, message: "nope" }))
        assert.strictEqual(protocol._tag, "McpProtocolError")
        if (protocol._tag === "McpProtocolError") assert.strictEqual(protocol.code, -32001)
        const unknown = yield* Effect.flip(c.callTool("no_such_tool", {}))
        assert.strictEqual(unknown._tag, "McpProtocolError")
        if (unknown._tag === "McpProtocolError") assert.strictEqual(unknown.code, -32602)
        for (const e of [toolError, protocol, unknown]) assert.strictEqual(e.server, "demo")
      }).pipe(Effect.scoped))

    it.live("delivers tools/list_changed on the notification stream", () =>
      Effect.gen(function*() {
        const c = yield* connect()
        const changed = yield* Effect.forkChild(Stream.runHead(c.toolListChanged))
        yield* Effect.yieldNow
        // Subscription is set up when the fiber starts; retry the trigger until the change arrives.
        yield* c.callTool("set_tools", { add: ["weather"] }).pipe(
          Effect.andThen(Effect.sleep(20)),
          Effect.repeat({ until: () => changed.pollUnsafe() !== undefined, times: 100 })
        )
        // The stream delivered a change (an empty stream, ended without one, would be None).
        assert.isTrue(Option.isSome(yield* Fiber.join(changed)))
        const { tools } = yield* c.listTools()
        assert.include(tools.map((t) => t.name), "weather")
      }).pipe(Effect.scoped))

    it.live("returns big payloads intact", () =>
      Effect.gen(function*() {
        const c = yield* connect()
        const r = yield* c.callTool("big", { bytes: 1_000_000 })
        assert.strictEqual(textOf(r)?.length, 1_000_000)
      }).pipe(Effect.scoped))
  })

conversation("stdio", (flags = {}) => McpClient.connect("demo", stdio(flags)))
conversation("Streamable HTTP", (flags = {}) =>
  Effect.gen(function*() {
    const server = yield* demoHttpServer(flags)
    return yield* McpClient.connect("demo", { type: "http", url: server.url })
  }))
conversation("legacy HTTP+SSE", (flags = {}) =>
  Effect.gen(function*() {
    const server = yield* demoHttpServer(flags)
    return yield* McpClient.connect("demo", { type: "sse", url: server.sseUrl })
  }))

describe("McpClient: processes and crashes (stdio)", () => {
  it.live("closing the scope ends the child process", () =>
    Effect.gen(function*() {
      const pid = yield* Effect.scoped(Effect.map(McpClient.connect("demo", stdio()), (c) => c.pid!))
      assert.isFalse(isRunning(pid))
    }))

  it.live("SIGKILL mid-call fails the call with McpClosedError within 1 s and leaves no process", () =>
    Effect.gen(function*() {
      const c = yield* McpClient.connect("demo", stdio())
      const pid = c.pid!
      const fiber = yield* Effect.forkChild(Effect.flip(c.callTool("slow", { ms: 20_000 }, { timeout: 30_000 })))
      yield* stats(c).pipe(Effect.flatMap((s) => ((s.calls.slow ?? 0) >= 1 ? Effect.void : Effect.fail("not yet"))), Effect.eventually)
      const killedAt = Date.now()
      process.kill(pid, "SIGKILL")
      const error = yield* Fiber.join(fiber)
      const elapsed = Date.now() - killedAt
      assert.strictEqual(error._tag, "McpClosedError")
      assert.isBelow(elapsed, 1_000)
      assert.isFalse(c.isOpen())
      yield* eventually(() => !isRunning(pid), 2_000, "child gone")
      // Later calls fail at once with the same typed error.
      const next = yield* Effect.flip(c.callTool("echo", { message: "x" }))
      assert.strictEqual(next._tag, "McpClosedError")
    }).pipe(Effect.scoped))

  it.live("a server that crashes while answering fails the call with McpClosedError", () =>
    Effect.gen(function*() {
      const c = yield* McpClient.connect("demo", stdio())
      const error = yield* Effect.flip(c.callTool("crash"))
      assert.strictEqual(error._tag, "McpClosedError")
      const reason = yield* c.closed
      assert.isString(reason)
    }).pipe(Effect.scoped))

  it.live("a line of garbage on stdout does not break the session", () =>
    Effect.gen(function*() {
      const c = yield* McpClient.connect("demo", stdio())
      yield* c.callTool("garbage")
      assert.strictEqual(textOf(yield* c.callTool("echo", { message: "after garbage" })), "after garbage")
    }).pipe(Effect.scoped))

  it.live("a server that exits at start gives McpConnectError with its stderr", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(McpClient.connect("broken", stdio({ exitAtStart: 3 }))))
      assert.strictEqual(error._tag, "McpConnectError")
      assert.strictEqual(error.server, "broken")
      assert.include(error._tag === "McpConnectError" ? error.stderrTail : "", "exiting at start with code 3")
    }))

  it.live("a missing command gives McpConnectError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.scoped(McpClient.connect("ghost", { type: "stdio", command: "/nonexistent/keel-no-such-binary" }))
      )
      assert.strictEqual(error._tag, "McpConnectError")
      assert.match(error.message, /ENOENT|not found|spawn/i)
    }))

  it.live("a connect timeout gives McpConnectError and leaves no child", () =>
    Effect.gen(function*() {
      const marker = uniqueMarker("connect-timeout")
      const error = yield* Effect.flip(
        Effect.scoped(
          McpClient.connect("sleepy", stdio({ startupDelayMs: 10_000, name: marker }), { settings: { connectTimeout: 300 } as never })
        )
      )
      assert.strictEqual(error._tag, "McpConnectError")
      assert.include(error.message, "timed out")
      yield* eventually(() => pidsWithMarker(marker).length === 0, 5_000, "no child left")
    }))

  it.live("interrupting a connect leaves no child process behind", () =>
    Effect.gen(function*() {
      const marker = uniqueMarker("interrupt-connect")
      const fiber = yield* Effect.forkChild(Effect.scoped(McpClient.connect("slow-start", stdio({ startupDelayMs: 10_000, name: marker }))))
      yield* eventually(() => pidsWithMarker(marker).length === 1, 5_000, "child spawned")
      yield* Fiber.interrupt(fiber)
      yield* eventually(() => pidsWithMarker(marker).length === 0, 5_000, "child gone")
    }))
})

describe("McpClient: HTTP server death", () => {
  for (const type of ["http", "sse"] as const) {
    it.live(`a ${type === "http" ? "Streamable HTTP" : "legacy SSE"} server killed mid-call fails the call promptly, not after its timeout`, () =>
      Effect.gen(function*() {
        const server = yield* demoHttpServer()
        const c = yield* McpClient.connect("remote", { type, url: type === "http" ? server.url : server.sseUrl })
        const fiber = yield* Effect.forkChild(Effect.flip(c.callTool("slow", { ms: 20_000 }, { timeout: 15_000 })))
        yield* stats(c).pipe(Effect.flatMap((s) => ((s.calls.slow ?? 0) >= 1 ? Effect.void : Effect.fail("not yet"))), Effect.eventually)
        const killedAt = Date.now()
        process.kill(server.pid, "SIGKILL")
        const error = yield* Fiber.join(fiber)
        assert.strictEqual(error._tag, "McpClosedError")
        assert.isBelow(Date.now() - killedAt, 1_000)
        assert.isFalse(c.isOpen())
        const next = yield* Effect.flip(c.callTool("echo", { message: "x" }))
        assert.strictEqual(next._tag, "McpClosedError")
      }).pipe(Effect.scoped))
  }

  it.live("an HTTP server that is gone between calls fails the next call with McpClosedError", () =>
    Effect.gen(function*() {
      const server = yield* demoHttpServer()
      const c = yield* McpClient.connect("remote", { type: "http", url: server.url })
      yield* c.ping()
      yield* Effect.promise(() => server.stop())
      const error = yield* Effect.flip(c.callTool("echo", { message: "x" }, { timeout: 5_000 }))
      assert.strictEqual(error._tag, "McpClosedError")
    }).pipe(Effect.scoped))

  it.live("an unreachable URL gives McpConnectError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.scoped(McpClient.connect("nowhere", { type: "http", url: "http://127.0.0.1:9/mcp" }, { settings: { connectTimeout: 2_000 } as never }))
      )
      assert.strictEqual(error._tag, "McpConnectError")
    }))
})

describe("McpClient against @modelcontextprotocol/server-everything (npm)", () => {
  const require = createRequire(import.meta.url)
  const entry = require.resolve("@modelcontextprotocol/server-everything/dist/index.js", { paths: [demoServerEntry, process.cwd()] })

  it.live("lists its tools and calls echo", () =>
    Effect.gen(function*() {
      const c = yield* McpClient.connect("everything", { type: "stdio", command: process.execPath, args: [entry, "stdio"] })
      const { tools } = yield* c.listTools()
      const names = tools.map((t) => t.name)
      assert.include(names, "echo")
      assert.isAbove(names.length, 5)
      const r = yield* c.callTool("echo", { message: "from keel" })
      assert.include(textOf(r), "from keel")
      // A 2025 server: the in-place server/discover probe is refused and initialize settles on 2025-11-25.
      assert.strictEqual(c.protocolVersion, "2025-11-25")
      assert.strictEqual(c.protocolEra, "legacy")
    }).pipe(Effect.scoped))
})

describe("McpClient: protocol version negotiation", () => {
  const http = (flags: Parameters<typeof demoStdio>[0] = {}) =>
    Effect.map(demoHttpServer(flags), (server): ServerConfig => ({ type: "http", url: server.url }))
  const transports = [
    ["stdio", (flags: Parameters<typeof demoStdio>[0] = {}) => Effect.succeed(stdio(flags))],
    ["Streamable HTTP", http]
  ] as const

  for (const [label, config] of transports) {
    it.live(`${label}: a 2026-07-28 server gets 2026-07-28, and a list change still arrives`, () =>
      Effect.gen(function*() {
        const c = yield* McpClient.connect("demo", yield* config())
        assert.strictEqual(c.protocolVersion, "2026-07-28")
        assert.strictEqual(c.protocolEra, "modern")
        assert.strictEqual(c.serverInfo.name, "keel-demo")
        assert.strictEqual(textOf(yield* c.callTool("add", { a: 2, b: 40 })), "42")
        yield* c.ping()
        // No unsolicited notifications on 2026-07-28: this comes over subscriptions/listen.
        const changed = yield* Effect.forkChild(Stream.runHead(c.toolListChanged))
        // The subscription is set up when the fiber starts: retry the trigger until the change arrives.
        yield* c.callTool("set_tools", { add: ["weather"] }).pipe(
          Effect.andThen(Effect.sleep(20)),
          Effect.repeat({ until: () => changed.pollUnsafe() !== undefined, times: 100 })
        )
        assert.isTrue(Option.isSome(yield* Fiber.join(changed).pipe(Effect.timeout("5 seconds"))))
        assert.include((yield* c.listTools()).tools.map((t) => t.name), "weather")
      }).pipe(Effect.scoped))

    for (const version of ["2025-11-25", "2025-06-18", "2025-03-26"]) {
      it.live(`${label}: a server pinned to ${version} gets ${version} through initialize`, () =>
        Effect.gen(function*() {
          const c = yield* McpClient.connect("demo", yield* config({ protocolVersion: version }))
          assert.strictEqual(c.protocolVersion, version)
          assert.strictEqual(c.protocolEra, "legacy")
          assert.strictEqual(textOf(yield* c.callTool("echo", { message: "old" })), "old")
          yield* c.ping()
        }).pipe(Effect.scoped))
    }

    it.live(`${label}: protocolVersion "legacy" never probes; a pinned revision the server lacks fails`, () =>
      Effect.gen(function*() {
        const cfg = yield* config()
        const legacy = yield* McpClient.connect("demo", cfg, { settings: { protocolVersion: "legacy" } })
        assert.strictEqual(legacy.protocolVersion, "2025-11-25")
        const pinned = yield* McpClient.connect("demo", cfg, { settings: { protocolVersion: "2026-07-28" } })
        assert.strictEqual(pinned.protocolVersion, "2026-07-28")
        const old = yield* McpClient.connect("demo", yield* config({ protocolVersion: "2025-06-18" }), {
          settings: { protocolVersion: "2026-07-28", connectTimeout: Duration.seconds(5) }
        }).pipe(Effect.flip)
        assert.strictEqual(old._tag, "McpConnectError")
      }).pipe(Effect.scoped))
  }

  it.live("an unknown protocolVersion setting is a McpConnectError naming the choices", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(McpClient.connect("demo", stdio(), { settings: { protocolVersion: "1999-01-01" } }))
      assert.strictEqual(error._tag, "McpConnectError")
      assert.include(error.message, "2026-07-28")
    }).pipe(Effect.scoped))

  it.live("stdioProbe sibling negotiates the same as in place", () =>
    Effect.gen(function*() {
      const c = yield* McpClient.connect("demo", stdio(), { settings: { stdioProbe: "sibling" } })
      assert.strictEqual(c.protocolVersion, "2026-07-28")
    }).pipe(Effect.scoped))
})

describe("McpClient over a transport of your own", () => {
  it.live("ConnectOptions.transport: an in-process demo server over the SDK's InMemoryTransport", () =>
    Effect.gen(function*() {
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
      const server = createDemoServer(new DemoState(parseOptions([])))
      yield* Effect.acquireRelease(Effect.promise(() => server.connect(serverSide as never)), () => Effect.promise(() => server.close()))
      const c = yield* McpClient.connect("in-process", stdio(), { transport: clientSide })
      assert.isUndefined(c.pid)
      assert.strictEqual(textOf(yield* c.callTool("add", { a: 20, b: 22 })), "42")
      assert.include((yield* c.listTools()).tools.map((t) => t.name), "echo")
    }).pipe(Effect.scoped))
})

