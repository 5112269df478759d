/**
 * Scale-out on a real Redis: two OS processes (replicas A and B, each a whole Keel graph built by
 * `ScaleOut.layerFile`, see `test/scaleout-replica.ts`) share one `redis-server` (started by this file on a
 * free loopback port, its own temp dir, no persistence; stopped at the end, also on failure) and one demo
 * server over Streamable HTTP. Counts are read at the demo server (`stats`, through a second server entry
 * with its own breaker and no limits).
 */
import { spawnDemoHttp, type DemoHttpChild } from "@keel/demo-server"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type RedisServerHandle, startRedis } from "./testing/redisServer.ts"

const replicaEntry = fileURLToPath(new URL("../test/scaleout-replica.ts", import.meta.url))

interface Transition {
  readonly server: string
  readonly from: string
  readonly to: string
  readonly reason: string
  readonly at: number
  readonly now: number
}

type Reply = Record<string, any>

class Replica {
  readonly child: ChildProcess
  readonly transitions: Array<Transition> = []
  readonly logs: Array<string> = []
  private readonly pending = new Map<number, (r: Reply) => void>()
  private nextId = 1
  readonly ready: Promise<Reply>

  readonly name: string

  constructor(name: string, config: string) {
    this.name = name
    this.child = spawn(process.execPath, [replicaEntry, config], { stdio: ["pipe", "pipe", "pipe"] })
    let readyResolve: (r: Reply) => void = () => {}
    this.ready = new Promise((resolve) => (readyResolve = resolve))
    let buffer = ""
    this.child.stdout!.on("data", (d: Buffer) => {
      buffer += d.toString()
      let i: number
      while ((i = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, i)
        buffer = buffer.slice(i + 1)
        if (!line.startsWith("@@")) {
          this.logs.push(line)
          continue
        }
        const msg = JSON.parse(line.slice(2)) as Reply
        if (msg.ready === true) readyResolve(msg)
        else if (msg.event === "transition") this.transitions.push(msg as unknown as Transition)
        else if (typeof msg.id === "number") {
          this.pending.get(msg.id)?.(msg)
          this.pending.delete(msg.id)
        }
      }
    })
    this.child.stderr!.on("data", (d: Buffer) => this.logs.push(d.toString()))
  }

  request(op: string, body: Record<string, unknown> = {}): Promise<Reply> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no reply to ${op} within 15 s`)), 15_000)
      this.pending.set(id, (r) => {
        clearTimeout(timer)
        resolve(r)
      })
      this.child.stdin!.write(JSON.stringify({ id, op, ...body }) + "\n")
    })
  }

  call(server: string, tool: string, args: Record<string, unknown> = {}, timeout = 5_000) {
    return this.request("call", { server, tool, args, timeout })
  }

  async available(): Promise<boolean> {
    return (await this.request("available")).available === true
  }

  stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve()
    return new Promise((resolve) => {
      const killer = setTimeout(() => this.child.kill("SIGKILL"), 3_000)
      this.child.once("exit", () => {
        clearTimeout(killer)
        resolve()
      })
      this.child.stdin!.end()
    })
  }
}

const until = async (check: () => boolean | Promise<boolean>, within: number, what: string, every = 5): Promise<number> => {
  const start = performance.now()
  while (performance.now() - start < within) {
    if (await check()) return performance.now() - start
    await new Promise((r) => setTimeout(r, every))
  }
  throw new Error(`${what} not reached within ${within} ms`)
}

let redis: RedisServerHandle
let demo: DemoHttpChild
let dir: string
let A: Replica
let B: Replica

const stats = async (r: Replica): Promise<{ calls: Record<string, number> }> => {
  const reply = await r.call("stats", "stats")
  expect(reply.ok).toBe(true)
  return JSON.parse(reply.text as string)
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "keel-scaleout-"))
  redis = await startRedis()
  demo = await spawnDemoHttp()
  // Opens on the failure rate over the last 2 calls (each call may also refetch the tool list, a success).
  const breaker = { consecutiveFailureThreshold: 0, failureRateThreshold: 0.5, minimumNumberOfCalls: 2, slidingWindowSize: 2, waitDurationInOpen: 2_000, waitDurationInOpenBackoff: "fixed", permittedCallsInHalfOpen: 1, successThresholdToClose: 1 }
  const config = {
    mcpServers: {
      demo: { url: demo.url, keel: { breaker } },
      stats: { url: demo.url },
      limited: { url: demo.url, keel: { rateLimit: { limit: 6, window: 60_000 } } },
      waiting: { url: demo.url, keel: { rateLimit: { limit: 2, window: 1_000, onExceeded: "wait" } } },
      bulk: { url: demo.url, keel: { maxConcurrentCalls: 1 } }
    },
    // Lists cached for every caller (the demo server sends no cacheScope hint, which reads as private).
    keel: { defaults: { cache: { cacheScope: "public" } }, redis: { url: redis.url, keyPrefix: "t:", retryInterval: 200, commandTimeout: 100, breakerLease: 3_000 } }
  }
  const file = join(dir, "mcp.json")
  writeFileSync(file, JSON.stringify(config))
  A = new Replica("A", file)
  B = new Replica("B", file)
  await Promise.all([A.ready, B.ready])
  await until(async () => (await A.available()) && (await B.available()), 10_000, "both replicas on Redis", 50)
  // Warm both sessions of every server used below.
  for (const r of [A, B]) for (const s of ["demo", "stats", "bulk"]) expect((await r.call(s, "echo", { message: "warm" })).ok).toBe(true)
}, 60_000)

afterAll(async () => {
  await Promise.allSettled([A?.stop(), B?.stop()])
  await demo?.stop()
  await redis?.stop()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

describe("shared breaker", () => {
  it("A's breaker opens: B rejects within 100 ms, only A probes, A's close reaches B", async () => {
    const before = (await stats(A)).calls
    const aOpens = A.transitions.length
    // Two failures open A's breaker.
    // Failures until A's breaker opens (the server answers each with an internal error).
    for (let i = 0; i < 3 && !A.transitions.slice(aOpens).some((t) => t.to === "Open"); i++) {
      expect((await A.call("demo", "fail", { kind: "protocol" })).tag).toBe("McpProtocolError")
      await new Promise((r) => setTimeout(r, 20))
    }
    await until(() => A.transitions.slice(aOpens).some((t) => t.server === "demo" && t.to === "Open"), 2_000, "A opens")
    const opened = A.transitions.slice(aOpens).find((t) => t.server === "demo" && t.to === "Open")

    // B holds its breaker open (ForcedOpen: it follows A) within 100 ms of A's transition.
    await until(() => B.transitions.some((t) => t.server === "demo" && t.to === "ForcedOpen"), 2_000, "B follows")
    const followed = B.transitions.find((t) => t.server === "demo" && t.to === "ForcedOpen")!
    expect(followed.at - opened!.at).toBeLessThan(100)
    const rejected = await B.call("demo", "echo", { message: "x" })
    expect(rejected).toMatchObject({ ok: false, tag: "CircuitOpenError" })

    // While A's wait runs and after it, B never sends a call to the server (no probe of its own).
    await new Promise((r) => setTimeout(r, 2_100))
    for (let i = 0; i < 5; i++) expect(await B.call("demo", "echo", { message: "x" })).toMatchObject({ ok: false, tag: "CircuitOpenError" })
    const mid = (await stats(A)).calls
    expect(mid.echo ?? 0).toBe(before.echo ?? 0)

    // A probes (one call), closes; B follows within 100 ms and calls pass again.
    const aMark = A.transitions.length
    expect((await A.call("demo", "echo", { message: "probe" })).ok).toBe(true)
    await until(() => A.transitions.slice(aMark).some((t) => t.server === "demo" && t.to === "Closed"), 2_000, "A closes")
    const closed = A.transitions.slice(aMark).find((t) => t.server === "demo" && t.to === "Closed")
    await until(() => B.transitions.some((t) => t.server === "demo" && t.from === "ForcedOpen" && t.to === "Closed"), 2_000, "B closes")
    const reset = B.transitions.find((t) => t.server === "demo" && t.from === "ForcedOpen" && t.to === "Closed")!
    expect(reset.at - closed!.at).toBeLessThan(100)
    expect((await B.call("demo", "echo", { message: "y" })).ok).toBe(true)
    const after = (await stats(A)).calls
    // One probe by A, one call by B after the close.
    expect((after.echo ?? 0) - (before.echo ?? 0)).toBe(2)
    const delay = await B.request("metric", { name: "propagation", attributes: { server: "demo", to: "open" } })
    expect(delay.value.count).toBeGreaterThanOrEqual(1)
  }, 30_000)
})

describe("rate limits", () => {
  it("a limit of 6 per window is respected by A and B together, counted at the server", async () => {
    const before = (await stats(A)).calls.add ?? 0
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? A : B).call("limited", "add", { a: i, b: 1 }))
    )
    const ok = replies.filter((r) => r.ok)
    const limited = replies.filter((r) => !r.ok)
    expect(ok.length).toBe(6)
    expect(limited.length).toBe(4)
    for (const r of limited) {
      expect(r.tag).toBe("RateLimitedError")
      expect(r.retryAfterMs).toBeGreaterThan(0)
      expect(r.retryAfterMs).toBeLessThanOrEqual(60_000)
    }
    expect(((await stats(A)).calls.add ?? 0) - before).toBe(6)
    // Every decision counted, by the store that made it (Redis here).
    let allowed = 0
    let rejected = 0
    for (const r of [A, B]) {
      allowed += (await r.request("metric", { name: "rateLimitDecisions", attributes: { server: "limited", decision: "allowed", store: "redis" } })).value.count
      rejected += (await r.request("metric", { name: "rateLimitDecisions", attributes: { server: "limited", decision: "rejected", store: "redis" } })).value.count
    }
    expect([allowed, rejected]).toEqual([6, 4])
  }, 30_000)

  it("onExceeded wait: a call waits for the next window when its deadline allows it, else fails at once", async () => {
    // Same window for A and B: 2 calls pass, the third waits, one with a short deadline fails fast.
    const first = await Promise.all([A.call("waiting", "echo", { message: "1" }), B.call("waiting", "echo", { message: "2" })])
    expect(first.every((r) => r.ok)).toBe(true)
    const short = await A.call("waiting", "echo", { message: "3" }, 50)
    expect(short).toMatchObject({ ok: false, tag: "RateLimitedError" })
    expect(short.ms).toBeLessThan(50)
    const waited = await B.call("waiting", "echo", { message: "4" }, 5_000)
    expect(waited.ok).toBe(true)
  }, 30_000)

  it("bulkhead: at most maxConcurrentCalls in flight per replica, the queue bounded by the deadline", async () => {
    const [slow, queued] = await Promise.all([
      A.call("bulk", "slow", { ms: 400 }, 2_000),
      new Promise<Reply>((r) => setTimeout(() => r(A.call("bulk", "echo", { message: "q" }, 150)), 50))
    ])
    expect(slow.ok).toBe(true)
    expect(queued).toMatchObject({ ok: false, tag: "BulkheadTimeoutError" })
    expect(queued.ms).toBeLessThan(400)
    // B's bulkhead is its own.
    const [bSlow, aEcho] = await Promise.all([B.call("bulk", "slow", { ms: 300 }, 2_000), A.call("bulk", "echo", { message: "free" }, 1_000)])
    expect(bSlow.ok && aEcho.ok).toBe(true)
  }, 30_000)
})

describe("shared tool lists", () => {
  it("a set_tools seen by A invalidates B's list within 100 ms (over pub/sub)", async () => {
    expect((await B.request("list", { server: "demo" })).names).not.toContain("shared_new_tool")
    expect((await A.request("list", { server: "demo" })).ok).toBe(true)
    const remoteBefore = (await B.request("metric", { name: "invalidations", attributes: { server: "demo", origin: "remote" } })).value.count
    const t0 = performance.now()
    expect((await A.call("demo", "set_tools", { add: ["shared_new_tool"] })).ok).toBe(true)
    await until(async () => ((await B.request("list", { server: "demo" })).names as Array<string>).includes("shared_new_tool"), 2_000, "B sees the new tool", 2)
    // B's own session may hear the server's list_changed first (origin local); A's broadcast must arrive too.
    // Waiting for it (not reading the counter once) keeps the test from racing the two.
    const remoteCount = async () => (await B.request("metric", { name: "invalidations", attributes: { server: "demo", origin: "remote" } })).value.count as number
    await until(async () => (await remoteCount()) > remoteBefore, 2_000, "B counts A's broadcast", 2)
    expect(performance.now() - t0).toBeLessThan(100 + 300) // the set_tools call itself is included here
  }, 30_000)
})

describe("Redis dies and comes back", () => {
  it("calls keep working within their deadlines on local state, and sharing resumes when Redis is back", async () => {
    await redis.kill()
    const t0 = performance.now()
    for (const r of [A, B]) {
      const reply = await r.call("limited", "echo", { message: "down" }, 1_000)
      // The quota of 6 was spent above through Redis; locally each replica has its own 6.
      expect(reply.ok).toBe(true)
      expect(reply.ms).toBeLessThan(1_000)
      expect((await r.call("demo", "echo", { message: "down" }, 1_000)).ok).toBe(true)
    }
    expect(performance.now() - t0).toBeLessThan(4_000)
    await until(async () => !(await A.available()) && !(await B.available()), 3_000, "both on local state", 20)
    expect(A.logs.join("\n")).toMatch(/shared state \(Redis\) unavailable/)
    const errors = await A.request("metric", { name: "sharedErrors", attributes: { operation: "rateLimit", reason: "unavailable" } })
    expect(errors.value.count).toBeGreaterThan(0)

    // A breaker opened while Redis is down stays local.
    const aMark = A.transitions.length
    for (let i = 0; i < 3 && !A.transitions.slice(aMark).some((t) => t.to === "Open"); i++) {
      expect((await A.call("demo", "fail", { kind: "protocol" })).tag).toBe("McpProtocolError")
      await new Promise((r) => setTimeout(r, 20))
    }
    await until(() => A.transitions.slice(aMark).some((t) => t.server === "demo" && t.to === "Open"), 2_000, "A opens locally")
    expect((await B.request("state", { server: "demo" })).state).toBe("Closed")

    await redis.restart()
    await until(async () => (await A.available()) && (await B.available()), 10_000, "both back on Redis", 50)
    // On return, A claims the breaker that opened while Redis was away, and B follows it.
    await until(async () => (await B.request("state", { server: "demo" })).state === "ForcedOpen", 3_000, "B follows after the outage", 20)
    // Limits are shared again: a fresh window in the new Redis, 6 for A and B together.
    const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? A : B).call("limited", "echo", { message: `${i}` })))
    expect(replies.filter((r) => r.ok).length).toBe(6)
    // Pub/sub is back too: A's list change reaches B over the channel again.
    const remote = async () => (await B.request("metric", { name: "invalidations", attributes: { server: "stats", origin: "remote" } })).value.count
    await B.request("list", { server: "stats" })
    const before = await remote()
    expect((await A.call("stats", "set_tools", { add: ["after_outage"] })).ok).toBe(true)
    await until(async () => (await remote()) > before, 3_000, "B invalidated over pub/sub after the outage", 10)
  }, 60_000)

  it("a stalled Redis (SIGSTOP) never holds a call past its deadline", async () => {
    redis.pause()
    try {
      const replies = await Promise.all([A.call("limited", "echo", { message: "s" }, 500), B.call("stats", "echo", { message: "s" }, 500)])
      for (const r of replies) expect(r.ms).toBeLessThan(500)
      // Redis is seen as stalled: a command (the call's rate limit, or the heartbeat) timed out.
      let timeouts = 0
      for (const operation of ["rateLimit", "ping"]) {
        timeouts += (await A.request("metric", { name: "sharedErrors", attributes: { operation, reason: "timeout" } })).value.count
      }
      expect(timeouts).toBeGreaterThan(0)
    } finally {
      redis.resume()
    }
    await until(async () => (await A.available()) && (await B.available()), 10_000, "both back after the stall", 50)
  }, 30_000)
})
