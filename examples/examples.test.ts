/**
 * Every example runs as a smoke test, so none of them rots: each must end by itself with exit code 0,
 * print what it measured, and leave no child process behind.
 *
 * Each example starts in a process group of its own (`detached`), and every child it spawns (demo servers,
 * real servers) inherits that group. Once the example has exited, `/proc` must show no live process of the
 * group: that catches any leaked child, whoever adopted it, and whatever its command line.
 */
import { spawn } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const dir = import.meta.dirname
const examples = readdirSync(dir).filter((f) => /^\d\d-.*\.ts$/.test(f)).sort()

/** Live (non-zombie) processes of process group `pgid`, read from `/proc`; throws when `/proc` cannot be read. */
const liveProcessesOfGroup = (pgid: number): Array<string> => {
  if (!existsSync("/proc/self/stat")) throw new Error("/proc is not available: the leak check cannot run")
  const out: Array<string> = []
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    let cmdline: string
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ").trim()
    } catch {
      continue // the process ended while we looked
    }
    // Fields after the command name: state, ppid, pgrp, ...
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    if (Number(pgrp) === pgid && state !== "Z") out.push(`${entry} ${cmdline}`)
  }
  return out
}

interface Run {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
  readonly pid: number
}

const runExample = (file: string): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(dir, file)], {
      detached: true, // its own process group: pgid = child.pid
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, KEEL_EXAMPLE_SMOKE: "1" }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")))
    const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 120_000)
    child.on("error", reject)
    child.on("close", (status) => {
      clearTimeout(timer)
      resolve({ status, stdout, stderr, pid: child.pid! })
    })
  })

describe("examples", () => {
  it("has examples to run", () => {
    expect(examples.length).toBeGreaterThan(0)
  })
  it("the leak check sees a process group's live members (so it can fail)", async () => {
    const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { detached: true, stdio: "ignore" })
    await new Promise((r) => child.once("spawn", r))
    try {
      expect(liveProcessesOfGroup(child.pid!).length).toBe(1)
    } finally {
      process.kill(-child.pid!, "SIGKILL")
    }
  })
  for (const file of examples) {
    it(`${file} runs to completion and leaves no child process behind`, async () => {
      const run = await runExample(file)
      try {
        expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0)
        expect(run.stdout.trim().split("\n").length).toBeGreaterThan(2)
        // A child may still be on its way out (SIGTERM sent, exit pending): give the group a moment.
        let left = liveProcessesOfGroup(run.pid)
        for (let i = 0; i < 50 && left.length > 0; i++) {
          await new Promise((r) => setTimeout(r, 100))
          left = liveProcessesOfGroup(run.pid)
        }
        expect(left).toEqual([])
      } finally {
        try {
          process.kill(-run.pid, "SIGKILL") // never leave a leaked child running past the test
        } catch {
          // the group is empty
        }
      }
    }, 150_000)
  }
})
