import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Redacted } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { decodeConfig, loadConfigFile } from "./McpConfigFile.ts"

const env = { GITHUB_TOKEN: "ghp_s3cr3t", DOCS_TOKEN: "docs-s3cr3t", HOME: "/home/keel" }

const claudeDesktop = {
  mcpServers: {
    github: {
      command: "node",
      args: ["github-server.js", "--home", "${HOME}"],
      env: { GITHUB_TOKEN: "${GITHUB_TOKEN}" },
      keel: { breaker: { waitDurationInOpen: 5000 }, timeouts: { tools: { search: 10000 } } }
    },
    docs: { url: "https://docs.example.test/mcp", headers: { Authorization: "Bearer ${env:DOCS_TOKEN}" } },
    legacy: { type: "sse", url: "http://127.0.0.1:4000/sse" }
  },
  keel: { defaults: { breaker: { waitDurationInOpen: 20000, permittedCallsInHalfOpen: 2 }, cache: { policy: "lfu", capacity: 10 } } }
}

const withFile = <A, E>(content: string, f: (file: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(join(tmpdir(), "keel-config-"))
      const file = join(dir, "mcp.json")
      writeFileSync(file, content)
      return { dir, file }
    }),
    ({ file }) => f(file),
    ({ dir }) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

describe("McpConfigFile", () => {
  it.effect("reads the Claude Desktop mcpServers format, expands ${VAR}, keeps secrets Redacted", () =>
    Effect.gen(function*() {
      const config = yield* decodeConfig(claudeDesktop, env)
      const [github, docs, legacy] = config.servers
      assert.strictEqual(github?.config.type, "stdio")
      if (github?.config.type === "stdio") {
        assert.deepStrictEqual(github.config.args, ["github-server.js", "--home", "/home/keel"])
        assert.strictEqual(Redacted.value(github.config.env!.GITHUB_TOKEN!), "ghp_s3cr3t")
      }
      assert.strictEqual(docs?.config.type, "http")
      if (docs?.config.type === "http") assert.strictEqual(Redacted.value(docs.config.headers!.Authorization!), "Bearer docs-s3cr3t")
      assert.strictEqual(legacy?.config.type, "sse")
      assert.notInclude(JSON.stringify(config.servers.map((s) => s.config)), "s3cr3t")
      // A server's section merges over the defaults, key by key.
      assert.strictEqual(Duration.toMillis(github!.breaker.waitDurationInOpen), 5000)
      assert.strictEqual(github!.breaker.permittedCallsInHalfOpen, 2)
      assert.strictEqual(Duration.toMillis(docs!.breaker.waitDurationInOpen), 20000)
      assert.strictEqual(Duration.toMillis(github!.timeouts.tools.search!), 10000)
      assert.strictEqual(config.cache.policy, "lfu")
      assert.strictEqual(config.cache.capacity, 10)
    }))

  it.effect("accepts VS Code's `servers` key", () =>
    Effect.gen(function*() {
      const config = yield* decodeConfig({ servers: { fs: { type: "stdio", command: "node", args: ["fs.js"] } } }, env)
      assert.strictEqual(config.servers[0]?.name, "fs")
    }))

  it.effect("bad files give errors that name the path and the problem", () =>
    Effect.gen(function*() {
      const cases: Array<[unknown, string, RegExp]> = [
        [{}, "mcpServers", /Missing/],
        [{ mcpServers: [] }, "mcpServers", /object/],
        [{ mcpServers: { a: { command: "" } } }, "mcpServers.a.command", /length/],
        [{ mcpServers: { a: { args: [] } } }, "mcpServers.a.type", /stdio/],
        [{ mcpServers: { a: { url: "not a url" } } }, "mcpServers.a.url", /URL/],
        [{ mcpServers: { a: { command: "node", env: { T: "${NOPE_NOT_SET}" } } } }, "mcpServers.a.env.T", /NOPE_NOT_SET is not set/],
        [{ mcpServers: { a: { command: "node", keel: { breaker: { failureRateThreshold: 7 } } } } }, "mcpServers.a.keel.breaker.failureRateThreshold", /./],
        [{ mcpServers: { a: { command: "node", keel: { timeouts: { call: "soon" } } } } }, "mcpServers.a.keel.timeouts.call", /number/],
        // Checks across fields are config errors too (they were a RangeError defect when the breaker was made).
        [
          { mcpServers: { a: { command: "node", keel: { breaker: { successThresholdToClose: 4, permittedCallsInHalfOpen: 2 } } } } },
          "mcpServers.a.keel.breaker.successThresholdToClose",
          /permittedCallsInHalfOpen/
        ],
        [
          { mcpServers: { a: { command: "node" } }, keel: { defaults: { breaker: { successThresholdToClose: 9 } } } },
          "mcpServers.a.keel.breaker.successThresholdToClose",
          /permittedCallsInHalfOpen/
        ],
        [{ mcpServers: { a: { command: "node", keel: { cache: { capacity: 1 } } } } }, "mcpServers.a.keel.cache", /keel.defaults.cache/],
        [{ mcpServers: { a: { command: "node" } }, keel: { defaults: { cache: { policy: "random" } } } }, "keel.defaults.cache.policy", /./]
      ]
      for (const [json, path, message] of cases) {
        const error = yield* Effect.flip(decodeConfig(json, env))
        assert.strictEqual(error._tag, "McpConfigError")
        assert.strictEqual(error.path, path, JSON.stringify(json))
        assert.match(error.message, message, JSON.stringify(json))
      }
    }))

  it.effect("loadConfigFile names the file; invalid JSON and missing files are typed errors", () =>
    Effect.gen(function*() {
      const good = yield* withFile(JSON.stringify(claudeDesktop), (file) => loadConfigFile(file, env))
      assert.strictEqual(good.servers.length, 3)
      const bad = yield* withFile("{ not json", (file) => Effect.flip(loadConfigFile(file, env)).pipe(Effect.map((e) => ({ e, file }))))
      assert.strictEqual(bad.e.path, `${bad.file}: (root)`)
      assert.match(bad.e.message, /invalid JSON at line 1, column 3/)
      // Node's JSON.parse quotes the text around the error; a token there must not reach the message.
      const leaky = yield* withFile('{"mcpServers": {"a": {"command": "node", "env": {"T": ghp_s3cr3t}}}}', (file) => Effect.flip(loadConfigFile(file, env)))
      assert.notInclude(leaky.message, "s3cr3t")
      assert.match(leaky.message, /invalid JSON at line 1, column \d+/)
      const missing = yield* Effect.flip(loadConfigFile("/nonexistent/keel/mcp.json", env))
      assert.match(missing.path, /^\/nonexistent\/keel\/mcp.json/)
      assert.match(missing.message, /ENOENT/)
      const badField = yield* withFile(JSON.stringify({ mcpServers: { x: { command: 1 } } }), (file) => Effect.flip(loadConfigFile(file, env)))
      assert.match(badField.path, /mcp\.json: mcpServers\.x\.command$/)
    }))
})
