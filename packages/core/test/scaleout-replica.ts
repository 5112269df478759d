/**
 * One replica for the scale-out tests (`src/ScaleOut.redis.test.ts`): a whole Keel graph
 * (`ScaleOut.layerFile(argv[2])`) in its own OS process, driven over stdin/stdout.
 *
 * - stdin: one JSON command per line, `{ id, op, ... }`; ops: `call`, `list`, `state`, `available`,
 *   `metric`.
 * - stdout: `@@` + JSON per line: `{ id, ... }` replies, `{ event: "transition", ... }` for every breaker
 *   transition, `{ ready: true }` once the graph is up. Anything else on stdout/stderr is log output.
 * - It exits when stdin closes.
 */
import { Clock, Effect, Layer, Metric, Option, Queue, Result, Stream } from "effect"
import { createInterface } from "node:readline"
import { CircuitBreakerRegistry } from "../src/CircuitBreaker.ts"
import { McpClientManager } from "../src/McpClientManager.ts"
import * as ScaleOut from "../src/ScaleOut.ts"
import { rateLimitDecisions } from "../src/ServerLimits.ts"
import { propagationDelay } from "../src/SharedBreakers.ts"
import { SharedRedis, sharedStateErrors } from "../src/SharedRedis.ts"
import { invalidations } from "../src/SharedToolCache.ts"

const out = (o: unknown) => process.stdout.write(`@@${JSON.stringify(o)}\n`)

type Command = { id: number; op: string; [k: string]: unknown }

const program = Effect.gen(function*() {
  const mcp = yield* McpClientManager
  const registry = yield* CircuitBreakerRegistry
  const shared = yield* Effect.serviceOption(SharedRedis)

  yield* Effect.forkScoped(Stream.runForEach(registry.events, (e) =>
    e._tag === "StateTransition"
      ? Effect.sync(() => out({ event: "transition", server: e.server, from: e.from, to: e.to, reason: e.reason, at: e.at, now: Date.now() }))
      : Effect.void))

  const commands = yield* Queue.unbounded<Command | null>()
  const rl = createInterface({ input: process.stdin })
  rl.on("line", (line) => {
    if (line.trim().length > 0) Queue.offerUnsafe(commands, JSON.parse(line) as Command)
  })
  rl.on("close", () => Queue.offerUnsafe(commands, null))

  const handle = (c: Command): Effect.Effect<unknown> => {
    switch (c.op) {
      case "call": {
        const server = c.server as string
        const timeout = (c.timeout as number | undefined) ?? 5_000
        return Effect.gen(function*() {
          const start = yield* Clock.currentTimeMillis
          const r = yield* Effect.result(
            // The manager applies the server's bulkhead and rate limit itself (ServerLimits in context).
            mcp.callTool(server, c.tool as string, (c.args ?? {}) as Record<string, unknown>, { timeout })
          )
          const ms = (yield* Clock.currentTimeMillis) - start
          if (Result.isSuccess(r)) {
            const first = r.success.content[0]
            return { ok: true, ms, isError: r.success.isError === true, text: first?.type === "text" ? first.text : undefined }
          }
          const e = r.failure as { _tag?: string; retryAfter?: unknown; message?: string }
          return {
            ok: false,
            ms,
            tag: e._tag,
            message: e.message,
            retryAfterMs: e._tag === "RateLimitedError" ? Number((e.retryAfter as { value?: { millis?: number } })?.value?.millis ?? -1) : undefined
          }
        })
      }
      case "list":
        return Effect.match(mcp.listTools(c.server as string), {
          onSuccess: (tools) => ({ ok: true, names: tools.map((t) => t.name) }),
          onFailure: (e) => ({ ok: false, tag: (e as { _tag?: string })._tag })
        })
      case "state":
        return Effect.map(Effect.flatMap(registry.get(c.server as string), (b) => b.state), (state) => ({ state }))
      case "available":
        return Effect.succeed({ available: Option.isSome(shared) && shared.value.isAvailable() })
      case "metric": {
        const attrs = (c.attributes ?? {}) as Record<string, string>
        const metric = c.name === "sharedErrors"
          ? sharedStateErrors
          : c.name === "rateLimitDecisions"
          ? rateLimitDecisions
          : c.name === "invalidations"
          ? invalidations
          : propagationDelay
        return Effect.map(Metric.value(Metric.withAttributes(metric as Metric.Metric<number, unknown>, attrs)), (value) => ({ value }))
      }
      default:
        return Effect.succeed({ error: `unknown op ${c.op}` })
    }
  }

  out({ ready: true, replica: Option.isSome(shared) ? shared.value.replicaId : null, pid: process.pid })
  while (true) {
    const c = yield* Queue.take(commands)
    if (c === null) break
    yield* Effect.forkScoped(Effect.flatMap(handle(c), (reply) => Effect.sync(() => out({ id: c.id, ...(reply as object) }))))
  }
})

const file = process.argv[2]
if (file === undefined) throw new Error("usage: scaleout-replica.ts <config.json>")
Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(ScaleOut.layerFile(file) as Layer.Layer<ScaleOut.Services>))).then(
  () => process.exit(0),
  (e) => {
    console.error("replica failed", e)
    process.exit(1)
  }
)
