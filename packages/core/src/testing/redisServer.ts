/**
 * Test support: a real `redis-server` (Debian's `redis-server` package, Redis 7) on a free loopback port,
 * with its own temporary `--dir` and no persistence (`--save ""`, no AOF), stopped by pid. No mock Redis.
 *
 * ```ts
 * const redis = await startRedis()
 * try { ... redis.url ... await redis.kill(); await redis.restart() } finally { await redis.stop() }
 * ```
 *
 * @since 0.3.0
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/**
 * A running (or stopped, then restartable) `redis-server`.
 *
 * @since 0.3.0
 */
export interface RedisServerHandle {
  readonly port: number
  readonly url: string
  /** The current pid (changes on `restart`); `undefined` while killed. */
  readonly pid: () => number | undefined
  /** SIGKILL (Redis dies mid-run), waits until it is gone. */
  readonly kill: () => Promise<void>
  /** Starts it again on the same port (empty: nothing was persisted). */
  readonly restart: () => Promise<void>
  /** SIGSTOP: Redis stalls (accepts nothing, answers nothing). */
  readonly pause: () => void
  /** SIGCONT after `pause`. */
  readonly resume: () => void
  /** Stops it (SIGCONT + SIGKILL) and removes its directory. Safe to call twice. */
  readonly stop: () => Promise<void>
}

/**
 * The `redis-server` binary, or `undefined` when it is not installed.
 *
 * @since 0.3.0
 */
export const redisServerBinary = (): string | undefined => {
  for (const candidate of ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]) {
    const r = spawnSync(candidate, ["--version"], { encoding: "utf8" })
    if (r.status === 0) return candidate
  }
  const r = spawnSync("redis-server", ["--version"], { encoding: "utf8" })
  return r.status === 0 ? "redis-server" : undefined
}

/**
 * A free TCP port on 127.0.0.1 (bound, read, released).
 *
 * @since 0.3.0
 */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const canConnect = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = new Socket()
    socket.setTimeout(200)
    socket.once("connect", () => {
      socket.write("PING\r\n")
    })
    socket.once("data", (data) => {
      socket.destroy()
      resolve(data.toString().startsWith("+PONG"))
    })
    socket.once("timeout", () => {
      socket.destroy()
      resolve(false)
    })
    socket.once("error", () => resolve(false))
    socket.connect(port, "127.0.0.1")
  })

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()))

/**
 * Starts a `redis-server` on a free loopback port with its own temp dir. Fails when it is not installed
 * (run `apt-get install -y redis-server`; `.ci/run` and `npm test` do it) or does not answer within 5 s.
 *
 * @since 0.3.0
 */
export const startRedis = async (options: { readonly port?: number } = {}): Promise<RedisServerHandle> => {
  const binary = redisServerBinary()
  if (binary === undefined) {
    throw new Error("redis-server is not installed: apt-get update && apt-get install -y redis-server (as root)")
  }
  const port = options.port ?? await freePort()
  const dir = mkdtempSync(join(tmpdir(), "keel-redis-"))
  let child: ChildProcess | undefined
  let stopped = false

  const launch = async (): Promise<void> => {
    const c = spawn(binary, [
      "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
      "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning"
    ], { stdio: "ignore" })
    child = c
    const started = Date.now()
    while (Date.now() - started < 5_000) {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`redis-server exited at start (${c.exitCode ?? c.signalCode})`)
      if (await canConnect(port)) return
      await new Promise((r) => setTimeout(r, 20))
    }
    c.kill("SIGKILL")
    throw new Error(`redis-server did not answer on port ${port} within 5 s`)
  }

  const kill = async (): Promise<void> => {
    const c = child
    child = undefined
    if (c === undefined) return
    try {
      c.kill("SIGCONT")
    } catch { /* gone */ }
    c.kill("SIGKILL")
    await exited(c)
  }

  await launch()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: () => child?.pid,
    kill,
    restart: async () => {
      if (stopped) throw new Error("redis-server was stopped")
      await kill()
      await launch()
    },
    pause: () => child?.kill("SIGSTOP"),
    resume: () => child?.kill("SIGCONT"),
    stop: async () => {
      stopped = true
      await kill()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
