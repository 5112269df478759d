import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Option, Redacted } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { McpClientManager } from "./McpClientManager.ts"
import * as ScaleOut from "./ScaleOut.ts"
import { decodeScaleOut, withoutScaleOut } from "./ScaleOutConfig.ts"
import { ServerLimits } from "./ServerLimits.ts"
import { SharedRedis } from "./SharedRedis.ts"

const servers = { gh: { command: "node", args: ["x.js"] } }

const errorOf = (json: unknown, env: Record<string, string> = {}) =>
  Effect.runSync(Effect.flip(decodeScaleOut(json, env)))

describe("ScaleOutConfig", () => {
  it("without keel.redis: no Redis, limits decoded and merged over keel.defaults", () => {
    const c = Effect.runSync(decodeScaleOut({
      mcpServers: {
        gh: { command: "node", keel: { rateLimit: { limit: 5000, window: 3_600_000 } } },
        docs: { url: "https://x/mcp", keel: { maxConcurrentCalls: 2 } }
      },
      keel: { defaults: { maxConcurrentCalls: 8 } }
    }))
    expect(Option.isNone(c.redis)).toBe(true)
    const gh = c.servers.get("gh")!
    expect(gh.rateLimit).toMatchObject({ limit: 5000, algorithm: "fixed-window", onExceeded: "fail" })
    expect(Duration.toMillis(gh.rateLimit!.window)).toBe(3_600_000)
    expect(gh.maxConcurrentCalls).toBe(8)
    expect(c.servers.get("docs")).toEqual({ rateLimit: undefined, maxConcurrentCalls: 2 })
  })

  it("keel.redis: url and password Redacted (never printed), defaults for the rest, ${VAR} expanded", () => {
    const c = Effect.runSync(decodeScaleOut(
      { mcpServers: servers, keel: { redis: { url: "redis://:${PW}@10.0.0.5:6379", password: "s3cret" } } },
      { PW: "hunter2" }
    ))
    const redis = Option.getOrThrow(c.redis)
    expect(Redacted.value(redis.url)).toBe("redis://:hunter2@10.0.0.5:6379")
    expect(String(redis.url)).not.toContain("hunter2")
    expect(JSON.stringify(redis)).not.toContain("hunter2")
    expect(JSON.stringify(redis)).not.toContain("s3cret")
    expect(redis.keyPrefix).toBe("keel:")
    expect(Duration.toMillis(redis.commandTimeout)).toBe(100)
    expect(Duration.toMillis(redis.retryInterval)).toBe(1_000)
  })

  it.each([
    [{ keel: { redis: {} } }, "keel.redis.url", /missing/i],
    [{ keel: { redis: "redis://x" } }, "keel.redis", /object/],
    [{ keel: { redis: { url: "http://:hunter2@host" } } }, "keel.redis.url", /redis:\/\//],
    [{ keel: { redis: { url: "redis://h", urll: 1 } } }, "keel.redis.urll", /./],
    [{ keel: { redis: { url: "redis://h", commandTimeout: "soon" } } }, "keel.redis.commandTimeout", /./],
    [{ keel: { redis: { url: "redis://h", keyPrefix: "" } } }, "keel.redis.keyPrefix", /./],
    [{ keel: { redis: { url: "redis://h", retryInterval: 0 } } }, "keel.redis.retryInterval", /positive/],
    [{ mcpServers: { gh: { command: "n", keel: { rateLimit: { limit: 0, window: 1000 } } } } }, "mcpServers.gh.keel.rateLimit.limit", /greater than or equal to 1/],
    [{ mcpServers: { gh: { command: "n", keel: { rateLimit: { limit: 5 } } } } }, "mcpServers.gh.keel.rateLimit.window", /missing/i],
    [{ mcpServers: { gh: { command: "n", keel: { rateLimit: { limit: 5, window: 1000, onExceeded: "queue" } } } } }, "mcpServers.gh.keel.rateLimit.onExceeded", /./],
    [{ mcpServers: { gh: { command: "n", keel: { rateLimit: { limit: 5, window: 1000, algorithm: "leaky" } } } } }, "mcpServers.gh.keel.rateLimit.algorithm", /./],
    [{ mcpServers: { gh: { command: "n", keel: { maxConcurrentCalls: 0 } } } }, "mcpServers.gh.keel.maxConcurrentCalls", /greater than or equal to 1/],
    [{ keel: { defaults: { maxConcurrentCalls: 1.5 } } }, "keel.defaults.maxConcurrentCalls", /./]
  ])("%j fails at its path", (json, path, message) => {
    const e = errorOf({ mcpServers: servers, ...json })
    expect(e._tag).toBe("McpConfigError")
    expect(e.path).toBe(path)
    expect(e.message).toMatch(message)
    expect(e.message).not.toContain("hunter2")
  })

  it("an unset variable in keel.redis is an error naming it", () => {
    const e = errorOf({ mcpServers: servers, keel: { redis: { url: "redis://:${REDIS_PW}@h" } } })
    expect(e).toMatchObject({ path: "keel.redis.url", message: "environment variable REDIS_PW is not set" })
  })

  it("withoutScaleOut leaves what McpConfig's decoder knows", () => {
    expect(withoutScaleOut({
      mcpServers: { gh: { command: "n", keel: { rateLimit: { limit: 1, window: 1 }, maxConcurrentCalls: 2, pool: { maxConnections: 1 } } } },
      keel: { redis: { url: "redis://h" }, defaults: { maxConcurrentCalls: 3, cache: { policy: "lfu" } } }
    })).toEqual({
      mcpServers: { gh: { command: "n", keel: { pool: { maxConnections: 1 } } } },
      keel: { defaults: { cache: { policy: "lfu" } } }
    })
  })
})

describe("ScaleOut layers", () => {
  it.effect("without keel.redis: the graph is in-process (no SharedRedis), limits local", () =>
    Effect.gen(function*() {
      const shared = yield* Effect.serviceOption(SharedRedis)
      expect(Option.isNone(shared)).toBe(true)
      const mcp = yield* McpClientManager
      expect(yield* mcp.servers).toEqual(["gh"])
      const limits = yield* ServerLimits
      // A rate limit of 2 per minute, enforced in this process.
      const results = yield* Effect.forEach([1, 2, 3], () => Effect.result(limits.run("gh", Effect.succeed("ran"))))
      expect(results.map((r) => r._tag)).toEqual(["Success", "Success", "Failure"])
    }).pipe(
      Effect.scoped,
      Effect.provide(ScaleOut.layerConfig({
        mcpServers: { gh: { command: "node", args: ["never-started.js"], keel: { rateLimit: { limit: 2, window: 60_000 } } } }
      }))
    ))

  it("layerFile errors name the file and the path", async () => {
    const dir = mkdtempSync(join(tmpdir(), "keel-scaleout-config-"))
    try {
      const file = join(dir, "mcp.json")
      writeFileSync(file, JSON.stringify({ mcpServers: servers, keel: { redis: { url: "redis://h", commandTimeout: -1 } } }))
      const build = () => Effect.runPromise(Effect.flip(Effect.provide(Effect.void, ScaleOut.layerFile(file))))
      expect(await build()).toMatchObject({ _tag: "McpConfigError", path: `${file}: keel.redis.commandTimeout` })
      writeFileSync(file, JSON.stringify({ mcpServers: { gh: { command: "n", keel: { poool: {} } } } }))
      expect((await build()).path).toBe(`${file}: mcpServers.gh.keel.poool`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
