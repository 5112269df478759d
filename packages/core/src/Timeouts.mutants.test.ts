/**
 * Tests that pin `Timeouts.ts` for mutation testing (`npm run mutation`, see MUTATION.md): the schema's
 * defaults and refusals, the resolution order of `resolveTimeout`, clamping to Node's timer limit, and the
 * `InvalidTimeout` answers. Pure functions: no clock, no process.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Schema } from "effect"
import * as Timeouts from "./Timeouts.ts"

const decode = Schema.decodeUnknownSync(Timeouts.TimeoutsConfig)
const config = (input: unknown) => decode(input)

describe("Timeouts (mutation pins)", () => {
  it("defaults: call 30 s, no per-tool overrides, no reset on progress, max 5 min", () => {
    const d = Timeouts.defaultTimeouts
    expect(Duration.toMillis(d.call)).toBe(30_000)
    expect(d.tools).toEqual({})
    expect(d.resetOnProgress).toBe(false)
    expect(Duration.toMillis(d.max)).toBe(300_000)
    expect(Timeouts.MAX_TIMER_MS).toBe(2 ** 31 - 1)
  })

  it("the schema refuses zero and negative durations, accepts Infinity as no timeout", () => {
    expect(() => decode({ call: 0 })).toThrow(/positive duration/)
    expect(() => decode({ max: -5 })).toThrow(/positive duration/)
    expect(() => decode({ tools: { t: 0 } })).toThrow(/positive duration/)
    expect(Duration.toMillis(decode({ call: 1 }).call)).toBe(1)
    expect(Duration.isFinite(decode({ call: Infinity }).call)).toBe(false)
  })

  it("resolution order: the call's timeout, then the tool's, then the server's call", () => {
    const c = config({ call: 1_000, tools: { slow: 5_000 }, max: 60_000 })
    expect(Timeouts.resolveTimeout(c, "fast", undefined)).toEqual({
      _tag: "ResolvedTimeout",
      timeoutMs: 1_000,
      resetOnProgress: false,
      maxMs: 60_000
    })
    expect(Timeouts.resolveTimeout(c, "slow", {})).toMatchObject({ timeoutMs: 5_000 })
    expect(Timeouts.resolveTimeout(c, "slow", { timeout: 250 })).toMatchObject({ timeoutMs: 250 })
    expect(Timeouts.resolveTimeout(c, "slow", { timeout: "2 seconds" })).toMatchObject({ timeoutMs: 2_000 })
    // Only own keys of `tools` count: a tool called "toString" gets the server's call timeout.
    expect(Timeouts.resolveTimeout(c, "toString", undefined)).toMatchObject({ timeoutMs: 1_000 })
  })

  it("max: the call's maxTotalTimeout replaces the config's; it is never below the timeout", () => {
    const c = config({ call: 1_000, max: 60_000 })
    expect(Timeouts.resolveTimeout(c, "t", { maxTotalTimeout: 10_000 })).toMatchObject({ maxMs: 10_000 })
    expect(Timeouts.resolveTimeout(c, "t", { timeout: 90_000 })).toMatchObject({ timeoutMs: 90_000, maxMs: 90_000 })
    expect(Timeouts.resolveTimeout(c, "t", { timeout: 5_000, maxTotalTimeout: 2_000 })).toMatchObject({
      timeoutMs: 5_000,
      maxMs: 5_000
    })
  })

  it("reset on progress: the call's flag, else onProgress given, else the config", () => {
    const off = config({})
    const on = config({ resetOnProgress: true })
    const cb = () => {}
    expect(Timeouts.resolveTimeout(off, "t", undefined)).toMatchObject({ resetOnProgress: false })
    expect(Timeouts.resolveTimeout(on, "t", undefined)).toMatchObject({ resetOnProgress: true })
    expect(Timeouts.resolveTimeout(off, "t", { onProgress: cb })).toMatchObject({ resetOnProgress: true })
    expect(Timeouts.resolveTimeout(off, "t", { onProgress: cb, resetTimeoutOnProgress: false })).toMatchObject({
      resetOnProgress: false
    })
    expect(Timeouts.resolveTimeout(on, "t", { resetTimeoutOnProgress: false })).toMatchObject({ resetOnProgress: false })
    expect(Timeouts.resolveTimeout(off, "t", { resetTimeoutOnProgress: true })).toMatchObject({ resetOnProgress: true })
  })

  it("clamps to Node's timer limit: infinity and longer values become MAX_TIMER_MS, the limit itself stays", () => {
    const c = config({ call: Infinity, max: Infinity, tools: { big: 2 ** 40 } })
    const max = Timeouts.MAX_TIMER_MS
    expect(Timeouts.resolveTimeout(c, "t", undefined)).toMatchObject({ timeoutMs: max, maxMs: max })
    expect(Timeouts.resolveTimeout(c, "big", undefined)).toMatchObject({ timeoutMs: max })
    expect(Timeouts.resolveTimeout(c, "t", { timeout: Duration.infinity })).toMatchObject({ timeoutMs: max })
    expect(Timeouts.resolveTimeout(c, "t", { maxTotalTimeout: max + 1 })).toMatchObject({ maxMs: max })
    expect(Timeouts.resolveTimeout(config({ call: max, max: 1 }), "t", undefined)).toMatchObject({ timeoutMs: max })
    expect(Timeouts.resolveTimeout(config({ call: max - 1, max: 1 }), "t", undefined)).toMatchObject({ timeoutMs: max - 1 })
    expect(Timeouts.serverTimeoutMs(config({ call: 1_234 }))).toBe(1_234)
    expect(Timeouts.serverTimeoutMs(config({ call: Infinity }))).toBe(max)
  })

  it("a call option that is not a positive duration is an InvalidTimeout naming the option", () => {
    const c = config({})
    expect(Timeouts.resolveTimeout(c, "t", { timeout: 0 })).toEqual({
      _tag: "InvalidTimeout",
      option: "timeout",
      message: "Expected a positive duration (Duration.infinity for no timeout)"
    })
    expect(Timeouts.resolveTimeout(c, "t", { timeout: "soon" as Duration.Input })).toEqual({
      _tag: "InvalidTimeout",
      option: "timeout",
      message: "Expected a duration such as 5000 (ms), \"5 seconds\" or Duration.infinity"
    })
    expect(Timeouts.resolveTimeout(c, "t", { maxTotalTimeout: -1 })).toMatchObject({
      _tag: "InvalidTimeout",
      option: "maxTotalTimeout"
    })
    expect(Timeouts.resolveTimeout(c, "t", { maxTotalTimeout: 1 })).toMatchObject({ _tag: "ResolvedTimeout", maxMs: 30_000 })
  })
})
