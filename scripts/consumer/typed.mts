// Type-checked (never run) by scripts/consumer.test.ts against the published .d.ts, with `tsc --noEmit`
// (NodeNext, strict; see tsconfig.json). Beside it the test type-checks the README's TypeScript snippets.
// It is .mts so that the workspace's own type-check (scripts/**/*.ts, no tarballs installed) leaves it alone.
import { CircuitOpenError, McpClientManager } from "@keel/core"
import * as CircuitBreaker from "@keel/core/CircuitBreaker"
import { PrometheusMetrics } from "@keel/prometheus"
import { Effect, Layer } from "effect"

/** `true` only for `any`: a type that failed to resolve would turn into `any` and hide every error. */
type IsAny<T> = 0 extends 1 & T ? true : false

const program = Effect.gen(function*() {
  const mcp = yield* McpClientManager
  const metrics = yield* PrometheusMetrics
  const tools = yield* mcp.listTools("memory")
  const name: string = tools[0]?.name ?? "none"
  const result = yield* mcp.callTool("memory", "read_graph", {}, { timeout: "5 seconds" })
  const notAny: [IsAny<typeof mcp>, IsAny<typeof tools>, IsAny<typeof result>, IsAny<typeof metrics>] = [false, false, false, false]
  const url: string = metrics.url
  return { name, result, notAny, url }
}).pipe(
  Effect.catchTag("CircuitOpenError", (e: CircuitOpenError) => Effect.succeed(e.message)),
  Effect.provide(Layer.mergeAll(McpClientManager.layerFile("mcp.json"), PrometheusMetrics.layer({ port: 0 })))
)

const breakerModule: IsAny<typeof CircuitBreaker> = false
export { breakerModule, program }
