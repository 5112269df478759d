/**
 * `SharedRedis` against a real `redis-server`: never blocks start-up, fails fast while Redis is down or
 * stalled, and uses Redis again when it returns.
 */
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { decodeRedis } from "./ScaleOutConfig.ts"
import { SharedRedis, type SharedRedisShape } from "./SharedRedis.ts"
import { freePort, type RedisServerHandle, startRedis } from "./testing/redisServer.ts"

const scopes: Array<Scope.Closeable> = []
const servers: Array<RedisServerHandle> = []

afterAll(async () => {
  for (const scope of scopes) await Effect.runPromise(Scope.close(scope, Exit.void))
  for (const server of servers) await server.stop()
})

const make = async (port: number): Promise<{ shared: SharedRedisShape; hooks: () => number }> => {
  const scope = Scope.makeUnsafe()
  scopes.push(scope)
  const config = Effect.runSync(decodeRedis({ url: `redis://127.0.0.1:${port}`, retryInterval: 100, commandTimeout: 100 }, {}))
  const t0 = performance.now()
  const ctx = await Effect.runPromise(Effect.flatMap(Layer.makeMemoMap, (memo) => Layer.buildWithMemoMap(SharedRedis.layer(config), memo, scope)))
  expect(performance.now() - t0).toBeLessThan(1_000) // built without waiting for Redis
  const shared = Context.get(ctx, SharedRedis)
  let runs = 0
  await Effect.runPromise(shared.onAvailable(Effect.sync(() => void runs++)))
  return { shared, hooks: () => runs }
}

const within = async (check: () => boolean | Promise<boolean>, ms: number, what: string) => {
  const start = performance.now()
  while (!(await check())) {
    if (performance.now() - start > ms) throw new Error(`${what} not reached within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe("SharedRedis", () => {
  it("Redis down at start: builds at once, commands fail fast, used as soon as Redis comes up", async () => {
    const port = await freePort()
    const { shared, hooks } = await make(port)
    expect(shared.isAvailable()).toBe(false)
    const t0 = performance.now()
    const failed = await Effect.runPromise(Effect.flip(shared.send("test", "PING")))
    expect(failed).toMatchObject({ _tag: "SharedStateUnavailable", reason: "unavailable" })
    expect(performance.now() - t0).toBeLessThan(50)

    servers.push(await startRedis({ port }))
    await within(() => shared.isAvailable(), 5_000, "available")
    expect(await Effect.runPromise(shared.send("test", "PING"))).toBe("PONG")
    await within(() => hooks() >= 1, 2_000, "the onAvailable hook ran")
  }, 30_000)

  it("stalled Redis: a command times out at commandTimeout, the next ones fail at once, then it returns", async () => {
    const redis = await startRedis()
    servers.push(redis)
    const { shared } = await make(redis.port)
    await within(() => shared.isAvailable(), 5_000, "available")
    redis.pause()
    try {
      const t0 = performance.now()
      const first = await Effect.runPromise(Effect.flip(shared.send("test", "GET", "k")))
      const firstMs = performance.now() - t0
      expect(first.reason).toBe("timeout")
      expect(firstMs).toBeGreaterThanOrEqual(90)
      expect(firstMs).toBeLessThan(300)
      const t1 = performance.now()
      const next = await Effect.runPromise(Effect.flip(shared.send("test", "GET", "k")))
      expect(next.reason).toBe("unavailable")
      expect(performance.now() - t1).toBeLessThan(20)
      expect(shared.isAvailable()).toBe(false)
    } finally {
      redis.resume()
    }
    await within(() => shared.isAvailable(), 5_000, "available again")
    expect(await Effect.runPromise(shared.send("test", "PING"))).toBe("PONG")
  }, 30_000)
})
