/**
 * "Secrets never reach a log, an error message or a metric label": every log line the manager writes (at
 * every level, with its annotations and causes), every error a caller sees and `status()` are captured while
 * servers configured with secrets fail in every way a test can make them fail, and searched for the secrets.
 */
import { assert, describe, it } from "@effect/vitest"
import { demoStdio } from "@keel/demo-server"
import { Cause, Effect, Logger, References } from "effect"
import { createServer } from "node:net"
import { McpClientManager } from "./McpClientManager.ts"

const ENV_SECRET = "sk-live-ENVSECRET-0123456789abcdef"
const HEADER_SECRET = "Bearer HEADERSECRET-fedcba9876543210"

/** Everything logged, as text: message, annotations, spans and cause. */
const captured: Array<string> = []
const capture = Logger.make((options) => {
  captured.push([
    String(options.logLevel),
    JSON.stringify(options.message, (_k, v) => (typeof v === "bigint" ? String(v) : v)),
    JSON.stringify(options.fiber.getRef(References.CurrentLogAnnotations)),
    Cause.pretty(options.cause)
  ].join(" | "))
})

/** A loopback port nobody listens on. */
const refusedPort = Effect.callback<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const leaks = (text: string) => [ENV_SECRET, HEADER_SECRET, "ENVSECRET", "HEADERSECRET"].filter((s) => text.includes(s))

describe("McpClientManager keeps secrets out of logs, errors and status", () => {
  it.live("a child printing its secret, a refused HTTP server with an auth header, a crash: nothing leaks", () =>
    Effect.gen(function*() {
      const port = yield* refusedPort
      const layer = McpClientManager.layerConfig({
        mcpServers: {
          // prints its own secret on stderr, then dies before initialize
          blabber: {
            command: process.execPath,
            args: ["-e", "process.stderr.write('token=' + process.env.API_TOKEN + '\\n'); process.exit(3)"],
            env: { API_TOKEN: ENV_SECRET }
          },
          remote: { url: `http://127.0.0.1:${port}/mcp`, headers: { Authorization: HEADER_SECRET } },
          demo: { ...demoStdio(), env: { API_TOKEN: ENV_SECRET } }
        }
      })
      const outcomes = yield* Effect.gen(function*() {
        const m = yield* McpClientManager
        const errors: Array<unknown> = []
        for (const server of ["blabber", "remote"]) {
          errors.push(yield* Effect.flip(m.callTool(server, "echo", { message: "hi" })))
          errors.push(yield* Effect.flip(m.listTools(server)))
        }
        // a healthy call, a tool error and a crash on the server that holds a secret in its env
        yield* m.callTool("demo", "echo", { message: "hi" })
        errors.push(yield* Effect.flip(m.callTool("demo", "fail", { kind: "isError", message: "no" })))
        errors.push(yield* Effect.flip(m.callTool("demo", "crash", {})))
        const statuses = yield* Effect.forEach(["blabber", "remote", "demo"], (s) => m.status(s))
        return { errors, statuses }
      }).pipe(Effect.provide(layer))
      // The failures really happened and were typed: the check below searched real error text.
      const tags = outcomes.errors.map((e) => (e as { _tag: string })._tag)
      assert.include(tags, "McpConnectError")
      assert.isTrue(outcomes.statuses.some((s) => s.lastError !== undefined))
      const blabber = outcomes.errors[0] as { _tag: string; stderrTail?: string }
      if (blabber._tag === "McpConnectError") assert.include(blabber.stderrTail ?? "", "token=***")
      assert.isAbove(captured.length, 0, "the manager logged something to search")
      const everything = [
        ...captured,
        ...outcomes.errors.map((e) => `${String(e)} ${JSON.stringify(e)}`),
        JSON.stringify(outcomes.statuses)
      ].join("\n")
      assert.deepStrictEqual(leaks(everything), [])
    }).pipe(
      Effect.provide(Logger.layer([capture])),
      Effect.provideService(References.MinimumLogLevel, "All")
    ), 60_000)
})


