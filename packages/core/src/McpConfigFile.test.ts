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
        // An error in keel.defaults is reported where it is written, not under a server (case 11).
        [
          { mcpServers: { a: { command: "node" } }, keel: { defaults: { breaker: { successThresholdToClose: 9 } } } },
          "keel.defaults.breaker.successThresholdToClose",
          /permittedCallsInHalfOpen/
        ],
        [{ mcpServers: { a: { command: "node" } }, keel: { defaults: { pool: { maxConnections: 0 } } } }, "keel.defaults.pool.maxConnections", /./],
        [{ mcpServers: { a: { command: "node" } }, keel: { defaults: { breaker: { failureRateThreshold: 2 } } } }, "keel.defaults.breaker.failureRateThreshold", /./],
        // Unknown keys, at every level, with the key probably meant (case 10).
        [{ mcpServers: { a: { command: "node", keel: { breaker: { waitDurationInOpenn: 5 } } } } }, "mcpServers.a.keel.breaker.waitDurationInOpenn", /did you mean "waitDurationInOpen"/],
        [{ mcpServers: { a: { command: "node", keel: { pool: { maxConections: 5 } } } } }, "mcpServers.a.keel.pool.maxConections", /did you mean "maxConnections"/],
        [{ mcpServers: { a: { command: "node" } }, keel: { defaults: { cache: { polcy: "lfu" } } } }, "keel.defaults.cache.polcy", /did you mean "policy"/],
        [{ mcpServers: { a: { command: "node" } }, keel: { defaults: { poool: {} } } }, "keel.defaults.poool", /did you mean "pool"/],
        [{ mcpServers: { a: { comand: "node" } } }, "mcpServers.a.comand", /did you mean "command"/],
        [{ mcpServers: { a: { command: "node", keel: { timeout: {} } } } }, "mcpServers.a.keel.timeout", /did you mean "timeouts"/],
        [{ mcpServers: { a: { command: "node", keel: { timeouts: { cal: 5 } } } } }, "mcpServers.a.keel.timeouts.cal", /did you mean "call"/],
        [{ mcpServers: { a: { command: "node", zzz: 1 } } }, "mcpServers.a.zzz", /^unknown key$/],
        [{ mcpServer: { a: { command: "node" } }, mcpServers: {} }, "mcpServer", /did you mean "mcpServers"/],
        [{ mcpServers: {}, keel: { defaults: {}, defualts: {} } }, "keel.defualts", /did you mean "defaults"/],
        [{ mcpServers: {}, keel: { poool: {} } }, "keel.poool", /did you mean "defaults.pool"/],
        // Scale-out sections given to the in-process graph: where they belong, not "unknown key".
        [{ mcpServers: {}, keel: { redis: { url: "redis://127.0.0.1:6379" } } }, "keel.redis", /ScaleOut\.layerFile/],
        [{ mcpServers: { a: { command: "node", keel: { rateLimit: { limit: 5, window: 1000 } } } } }, "mcpServers.a.keel.rateLimit", /ScaleOut/],
        [{ mcpServers: { a: { command: "node", keel: { maxConcurrentCalls: 4 } } } }, "mcpServers.a.keel.maxConcurrentCalls", /ScaleOut/],
        // Timeouts that would time out every request (case 5).
        [{ mcpServers: { a: { command: "node", keel: { timeouts: { call: 0 } } } } }, "mcpServers.a.keel.timeouts.call", /positive/],
        [{ mcpServers: { a: { command: "node", keel: { timeouts: { call: -5 } } } } }, "mcpServers.a.keel.timeouts.call", /positive/],
        [{ mcpServers: { a: { command: "node", keel: { timeouts: { tools: { x: 0 } } } } } }, "mcpServers.a.keel.timeouts.tools.x", /positive/],
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

  it.effect("durations in files: milliseconds or strings such as \"5 seconds\"; a null timeout is none; other clients' keys pass", () =>
    Effect.gen(function*() {
      const config = yield* decodeConfig({
        mcpServers: {
          a: {
            command: "node",
            disabled: false,
            autoApprove: [],
            keel: {
              breaker: { waitDurationInOpen: "5 seconds" },
              pool: { idleTimeout: "2 minutes", acquireTimeout: 1500 },
              timeouts: { call: "30 days", max: null, tools: { slow: "1 minute", forever: null } }
            }
          }
        },
        keel: { defaults: { pool: { housekeepingInterval: "2 seconds" }, cache: { timeToLive: "10 minutes" } } },
        globalShortcut: "Ctrl+Space"
      }, env)
      const a = config.servers[0]!
      assert.strictEqual(Duration.toMillis(a.breaker.waitDurationInOpen), 5_000)
      assert.strictEqual(Duration.toMillis(a.pool.idleTimeout), 120_000)
      assert.strictEqual(Duration.toMillis(a.pool.acquireTimeout), 1_500)
      assert.strictEqual(Duration.toMillis(a.timeouts.call), 30 * 86_400_000)
      assert.strictEqual(Duration.toMillis(a.timeouts.max), Infinity)
      assert.strictEqual(Duration.toMillis(a.timeouts.tools.slow!), 60_000)
      assert.strictEqual(Duration.toMillis(a.timeouts.tools.forever!), Infinity)
      assert.strictEqual(Duration.toMillis(config.pool.housekeepingInterval), 2_000)
      assert.strictEqual(Duration.toMillis(config.cache.timeToLive), 600_000)
      // A string that is no duration is still an error at its path.
      const bad = yield* Effect.flip(decodeConfig({ mcpServers: { a: { command: "node", keel: { pool: { idleTimeout: "soon" } } } } }, env))
      assert.strictEqual(bad.path, "mcpServers.a.keel.pool.idleTimeout")
      // A count is not a duration: "5 seconds" there stays an error.
      const count = yield* Effect.flip(decodeConfig({ mcpServers: { a: { command: "node", keel: { pool: { maxConnections: "5 seconds" } } } } }, env))
      assert.strictEqual(count.path, "mcpServers.a.keel.pool.maxConnections")
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
