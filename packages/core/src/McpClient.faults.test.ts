/**
 * McpClient against servers that misbehave at connect: a refused port, a port that accepts and never answers,
 * a child that prints its own secret and dies. Every connect ends within its `connectTimeout` with a typed
 * `McpConnectError`, leaves no socket open, and keeps configured secrets out of the error.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Redacted } from "effect"
import { createServer, type Server, type Socket } from "node:net"
import { McpClient } from "./McpClient.ts"
import { decodeServerConfig, type ServerConfig } from "./ServerConfig.ts"
import { demoStdio } from "@keel/demo-server"

/** A TCP server on a free loopback port that accepts connections and never answers; closed with the scope. */
const silentServer = Effect.acquireRelease(
  Effect.callback<{ readonly server: Server; readonly port: number; readonly sockets: Set<Socket>; readonly all: Set<Socket> }>((resume) => {
    const sockets = new Set<Socket>()
    const all = new Set<Socket>()
    const server = createServer((socket) => {
      all.add(socket)
      socket.on("close", () => all.delete(socket))
      // Only sockets that carried a request count: undici may open a spare idle connection after an abort,
      // which it closes by itself after its keep-alive timeout.
      socket.once("data", () => sockets.add(socket))
      socket.on("close", () => sockets.delete(socket))
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      resume(Effect.succeed({ server, port: typeof address === "object" && address !== null ? address.port : 0, sockets, all }))
    })
  }),
  ({ all, server }) =>
    Effect.callback<void>((resume) => {
      for (const s of all) s.destroy()
      server.close(() => resume(Effect.void))
    })
)

/** A loopback port nobody listens on: bind one, read its number, close it. */
const refusedPort = Effect.callback<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const connectExit = (config: ServerConfig, connectTimeout: number) =>
  Effect.gen(function*() {
    const started = Date.now()
    const exit = yield* Effect.exit(Effect.scoped(McpClient.connect("faulty", config, { settings: { connectTimeout: Duration.millis(connectTimeout) } })))
    return { exit, elapsed: Date.now() - started }
  })

const connectError = (exit: Exit.Exit<unknown, unknown>) => {
  assert.isTrue(Exit.isFailure(exit), "connect must fail")
  const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  assert.isDefined(error, "a typed failure, not a defect or an interruption")
  const e = (error as { error: { _tag: string; message: string; stderrTail: string } }).error
  assert.strictEqual(e._tag, "McpConnectError")
  return e
}

describe("McpClient faults at connect", () => {
  for (const type of ["sse", "http"] as const) {
    it.live(`${type}: a refused port fails fast with McpConnectError`, () =>
      Effect.gen(function*() {
        const port = yield* refusedPort
        const { elapsed, exit } = yield* connectExit({ type, url: `http://127.0.0.1:${port}/${type === "sse" ? "sse" : "mcp"}` }, 5_000)
        const e = connectError(exit)
        assert.match(e.message, /ECONNREFUSED|unreachable/)
        // Far below the 5 s connectTimeout: a refusal is an answer.
        assert.isBelow(elapsed, 2_500)
      }))

    it.live(`${type}: a server that accepts and never answers is bounded by connectTimeout, and no socket stays open`, () =>
      Effect.gen(function*() {
        const { port, sockets } = yield* silentServer
        const { elapsed, exit } = yield* connectExit({ type, url: `http://127.0.0.1:${port}/${type === "sse" ? "sse" : "mcp"}` }, 800)
        const e = connectError(exit)
        assert.match(e.message, /timed out after 800 ms/)
        assert.isAtLeast(elapsed, 750)
        assert.isBelow(elapsed, 800 + 1_500, "connectTimeout plus a documented slack (stderr grace 50 ms, close)")
        // The client closed its side: every socket that carried a request goes away.
        const deadline = Date.now() + 2_000
        while (sockets.size > 0 && Date.now() < deadline) yield* Effect.sleep(20)
        assert.strictEqual(sockets.size, 0)
      }).pipe(Effect.scoped))
  }

  it.live("a child that prints its own secret to stderr: the secret never reaches McpConnectError", () =>
    Effect.gen(function*() {
      const token = "ghp_s3cr3t_token_value_1234567890"
      const config: ServerConfig = {
        type: "stdio",
        command: process.execPath,
        args: ["-e", "process.stderr.write('starting with token ' + process.env.GITHUB_TOKEN + '\\n'); process.exit(3)"],
        env: { GITHUB_TOKEN: Redacted.make(token) }
      }
      const { exit } = yield* connectExit(config, 5_000)
      const e = connectError(exit)
      assert.include(e.stderrTail, "starting with token ***")
      assert.notInclude(e.stderrTail, token)
      assert.notInclude(JSON.stringify(e), token)
      assert.notInclude(e.message, token)
    }))

  it.live("a secret cut by the tail's bound is masked too", () =>
    Effect.gen(function*() {
      const token = "abcdefghijklmnopqrstuvwxyz0123456789"
      const config: ServerConfig = {
        type: "stdio",
        command: process.execPath,
        // 40 bytes of tail: the token is printed first, so the tail starts inside it.
        args: ["-e", "process.stderr.write(process.env.API_KEY + ' and then the end'); process.exit(3)"],
        env: { API_KEY: Redacted.make(token) }
      }
      const exit = yield* Effect.exit(
        Effect.scoped(McpClient.connect("faulty", config, { settings: { connectTimeout: Duration.seconds(5), stderrTailBytes: 40 } }))
      )
      const e = connectError(exit)
      assert.isTrue(e.stderrTail.startsWith("***"), e.stderrTail)
      assert.include(e.stderrTail, " and then the end")
      for (let n = 4; n <= token.length; n++) assert.notInclude(e.stderrTail, token.slice(-n))
    }))
})

describe("McpClient faults: messages over the limit", () => {
  it.live("a result over maxMessageBytes is a typed McpMessageTooLargeError naming the limit; within it, calls work", () =>
    Effect.gen(function*() {
      const config: ServerConfig = { type: "stdio", ...demoStdio(), maxMessageBytes: 100_000 }
      const c = yield* McpClient.connect("big", config)
      const ok = yield* c.callTool("big", { bytes: 50_000 })
      assert.strictEqual(ok.content[0]?.type === "text" ? ok.content[0].text.length : 0, 50_000)
      const error = yield* Effect.flip(c.callTool("big", { bytes: 200_000 }))
      assert.strictEqual(error._tag, "McpMessageTooLargeError")
      if (error._tag === "McpMessageTooLargeError") {
        assert.strictEqual(error.limitBytes, 100_000)
        assert.match(error.message, /exceeded the limit of 100000 bytes/)
      }
      // The session is gone (the SDK cannot read past the limit); later calls say why, with the same type.
      assert.isFalse(c.isOpen())
      const later = yield* Effect.flip(c.callTool("echo", { message: "hi" }))
      assert.strictEqual(later._tag, "McpMessageTooLargeError")
      // And the child was stopped.
      const pid = c.pid
      assert.isDefined(pid)
      yield* Effect.promise(() => eventuallyDead(pid!))
    }).pipe(Effect.scoped))

  it.live("the same result fits once maxMessageBytes allows it", () =>
    Effect.gen(function*() {
      const c = yield* McpClient.connect("big", { type: "stdio", ...demoStdio(), maxMessageBytes: 1_000_000 })
      const ok = yield* c.callTool("big", { bytes: 200_000 })
      assert.strictEqual(ok.content[0]?.type === "text" ? ok.content[0].text.length : 0, 200_000)
    }).pipe(Effect.scoped))

  it.effect("maxMessageBytes below 1 KiB is a config error naming the field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(decodeServerConfig({ type: "stdio", command: "node", maxMessageBytes: 10 }, "mcpServers.big"))
      assert.strictEqual(error.path, "mcpServers.big.maxMessageBytes")
    }))
})

const eventuallyDead = async (pid: number) => {
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0)
    } catch {
      return
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`child ${pid} still alive`)
}
