/**
 * Starting the demo server from a parent process (tests, examples, benchmarks).
 *
 * ```ts
 * import { demoStdio, spawnDemoHttp } from "@keel/demo-server"
 *
 * const stdio = demoStdio({ pageSize: 3 })    // { command: <node>, args: [main.ts, "--page-size", "3"] }
 * const http = await spawnDemoHttp()          // a child listening on 127.0.0.1:<free port>
 * console.log(http.url)                       // http://127.0.0.1:43817/mcp
 * await http.stop()
 * ```
 */
import { spawn, type ChildProcess } from "node:child_process"
import { fileURLToPath } from "node:url"

/** Absolute path of the demo server's entry point (`main.ts`, run by Node's type stripping). */
export const demoServerEntry: string = fileURLToPath(new URL("./main.ts", import.meta.url))

/** Start-up flags of the demo server; see `options.ts` for their meaning. */
export interface DemoFlags {
  readonly pageSize?: number
  readonly extraTools?: number
  readonly startupDelayMs?: number
  readonly exitAtStart?: number
  readonly listTtlMs?: number
  readonly listCacheScope?: "public" | "private"
  readonly name?: string
  /** `--protocol-version`: pin the server to this MCP revision (default: 2026-07-28 and every older one). */
  readonly protocolVersion?: string
  /** `--surface`: the tools that change resources and prompts and echo trace context (see `surface.ts`). */
  readonly surface?: boolean
}

/** The command-line flags for `flags`. */
export const demoServerArgs = (flags: DemoFlags = {}): Array<string> => {
  const args: Array<string> = []
  if (flags.pageSize !== undefined) args.push("--page-size", String(flags.pageSize))
  if (flags.extraTools !== undefined) args.push("--extra-tools", String(flags.extraTools))
  if (flags.startupDelayMs !== undefined) args.push("--startup-delay-ms", String(flags.startupDelayMs))
  if (flags.exitAtStart !== undefined) args.push("--exit-at-start", String(flags.exitAtStart))
  if (flags.listTtlMs !== undefined) args.push("--list-ttl-ms", String(flags.listTtlMs))
  if (flags.listCacheScope !== undefined) args.push("--list-cache-scope", flags.listCacheScope)
  if (flags.name !== undefined) args.push("--name", flags.name)
  if (flags.protocolVersion !== undefined) args.push("--protocol-version", flags.protocolVersion)
  if (flags.surface === true) args.push("--surface")
  return args
}

/** The `command` and `args` that start the demo server over stdio with the current Node. */
export const demoStdio = (flags: DemoFlags = {}): { command: string; args: Array<string> } => ({
  command: process.execPath,
  args: [demoServerEntry, ...demoServerArgs(flags)]
})

/** A demo server child serving Streamable HTTP. */
export interface DemoHttpChild {
  /** The Streamable HTTP endpoint (`…/mcp`). */
  readonly url: string
  /** The legacy HTTP+SSE endpoint (`…/sse`) of the same server. */
  readonly sseUrl: string
  readonly pid: number
  readonly child: ChildProcess
  /** SIGTERM, then SIGKILL after 2 s; resolves once the process has exited. */
  readonly stop: () => Promise<void>
}

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()))

/** Spawns the demo server over Streamable HTTP on 127.0.0.1 and waits until it listens. */
export const spawnDemoHttp = (flags: DemoFlags & { readonly port?: number } = {}): Promise<DemoHttpChild> =>
  new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [demoServerEntry, "--transport", "http", "--host", "127.0.0.1", "--port", String(flags.port ?? 0), ...demoServerArgs(flags)],
      { stdio: ["ignore", "pipe", "pipe"] }
    )
    let out = ""
    let err = ""
    const fail = (why: string) => {
      child.kill("SIGKILL")
      reject(new Error(`demo HTTP server did not start: ${why}\n${err}`))
    }
    const timer = setTimeout(() => fail("no listening line within 15 s"), 15_000)
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString()
    })
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`demo HTTP server exited (${code ?? signal}) before listening\n${err}`))
    })
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString()
      const m = /KEEL_DEMO_LISTENING (\S+)/.exec(out)
      if (m?.[1] !== undefined) {
        clearTimeout(timer)
        const stop = async () => {
          if (child.exitCode !== null || child.signalCode !== null) return
          child.kill("SIGTERM")
          const killer = setTimeout(() => child.kill("SIGKILL"), 2_000)
          await exited(child)
          clearTimeout(killer)
        }
        resolve({ url: m[1], sseUrl: m[1].replace(/\/mcp$/, "/sse"), pid: child.pid!, child, stop })
      }
    })
  })

/** Whether a process is alive (signal 0 probes without killing). */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
