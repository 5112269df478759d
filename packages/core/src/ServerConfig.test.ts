import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { decodeServerConfig, networkTransport } from "./ServerConfig.ts"

const fails = (input: unknown) => Effect.flip(decodeServerConfig(input, "servers.github"))

describe("ServerConfig", () => {
  it.effect("decodes the three transports, secrets as Redacted", () =>
    Effect.gen(function*() {
      const stdio = yield* decodeServerConfig({ type: "stdio", command: "node", args: ["s.js"], env: { TOKEN: "ghp_secret" }, cwd: "/tmp" })
      assert.strictEqual(stdio.type, "stdio")
      if (stdio.type !== "stdio") return
      assert.isTrue(Redacted.isRedacted(stdio.env!.TOKEN))
      assert.strictEqual(Redacted.value(stdio.env!.TOKEN!), "ghp_secret")
      assert.notInclude(JSON.stringify(stdio), "ghp_secret")
      assert.notInclude(String(stdio.env!.TOKEN), "ghp_secret")
      const http = yield* decodeServerConfig({ type: "http", url: "http://127.0.0.1:3000/mcp", headers: { Authorization: "Bearer abc" } })
      assert.strictEqual(networkTransport(http), "tcp")
      assert.notInclude(JSON.stringify(http), "Bearer abc")
      const sse = yield* decodeServerConfig({ type: "sse", url: "https://example.test/sse" })
      assert.strictEqual(sse.type, "sse")
      assert.strictEqual(networkTransport(stdio), "pipe")
    }))

  it.effect("names the bad field in the error", () =>
    Effect.gen(function*() {
      const cases: Array<[unknown, string]> = [
        [{ type: "stdio", command: "" }, "servers.github.command"],
        [{ type: "stdio" }, "servers.github.command"],
        [{ type: "stdio", command: "node", args: "not-an-array" }, "servers.github.args"],
        [{ type: "stdio", command: "node", env: { TOKEN: 42 } }, "servers.github.env.TOKEN"],
        [{ type: "http", url: "ftp://example.test" }, "servers.github.url"],
        [{ type: "http", url: "https://user:hunter2@example.test/mcp" }, "servers.github.url"],
        [{ type: "http" }, "servers.github.url"],
        [{ type: "websocket", url: "ws://x" }, "servers.github.type"],
        [{ command: "node" }, "servers.github.type"]
      ]
      for (const [input, path] of cases) {
        const error = yield* fails(input)
        assert.strictEqual(error._tag, "McpConfigError")
        assert.strictEqual(error.path, path, JSON.stringify(input))
        assert.isAbove(error.message.length, 0)
      }
    }))

  it.effect("never echoes a value in the error message (it may be a secret)", () =>
    Effect.gen(function*() {
      const error = yield* fails({ type: "stdio", command: "node", env: { TOKEN: 123456789 } })
      assert.notInclude(error.message, "123456789")
      const header = yield* fails({ type: "http", url: "http://127.0.0.1/mcp", headers: { Authorization: ["Bearer", "xyz-secret"] } })
      assert.notInclude(header.message, "xyz-secret")
      assert.strictEqual(header.path, "servers.github.headers.Authorization")
      const userinfo = yield* fails({ type: "http", url: "https://user:hunter2@example.test/mcp" })
      assert.notInclude(userinfo.message, "hunter2")
    }))
})
