/**
 * Test support: finding and waiting for real processes and real servers. Used by Keel's own tests; it is
 * exported so users can write the same kind of tests against their servers.
 *
 * @since 0.1.0
 */
import { readdirSync, readFileSync } from "node:fs"
import { Effect, Schedule } from "effect"
import { spawnDemoHttp, type DemoFlags, type DemoHttpChild } from "@keel/demo-server"

/**
 * Pids of live processes whose command line contains `marker` (Linux `/proc`).
 *
 * @since 0.1.0
 */
export const pidsWithMarker = (marker: string): Array<number> => {
  const pids: Array<number> = []
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8")
      if (cmdline.includes(marker)) {
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
        // A zombie (state Z) has exited; only its parent has not reaped it yet.
        const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
        if (state !== "Z") pids.push(Number(entry))
      }
    } catch {
      // the process ended while we looked
    }
  }
  return pids
}

/**
 * Whether a process is alive (and not a zombie).
 *
 * @since 0.1.0
 */
export const isRunning = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return false
  }
}

/**
 * Retries `check` every 10 ms until it returns true, for at most `within` (real time). For waiting on real
 * processes and servers, never on timers.
 *
 * @since 0.1.0
 */
export const eventually = (check: () => boolean, within = 5_000, what = "condition"): Effect.Effect<void, Error> =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail(new Error(`${what} not reached within ${within} ms`)))).pipe(
    Effect.retry(Schedule.spaced(10).pipe(Schedule.upTo({ duration: within })))
  )

/**
 * A demo server over Streamable HTTP as a scoped resource: started in a child process, stopped (and
 * waited for) when the scope closes.
 *
 * @since 0.1.0
 */
export const demoHttpServer = (flags: DemoFlags = {}): Effect.Effect<DemoHttpChild, never, import("effect").Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => spawnDemoHttp(flags)),
    (server) => Effect.promise(() => server.stop())
  )

/**
 * A unique marker for a test's child processes, passed as the demo server's `--name`.
 *
 * @since 0.1.0
 */
export const uniqueMarker = (label: string): string => `keel-test-${label}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
