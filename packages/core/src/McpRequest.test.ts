/**
 * Requests sent with their result schema (McpRequest: no SDK probe) give what the SDK's own methods give,
 * result for result and error for error, on both protocol eras: a Keel session and a bare SDK client, each
 * on its own demo server child (stdio, 2026-07-28 and pinned to 2025-11-25).
 */
import { assert, describe, it } from "@effect/vitest"
import { Client } from "@modelcontextprotocol/client"
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio"
import { demoStdio } from "@keel/demo-server"
import { Effect, Exit } from "effect"
import { McpClient } from "./McpClient.ts"

const outcome = <A>(effect: Effect.Effect<A, { readonly code?: unknown; readonly message: string }>) =>
  Effect.map(Effect.exit(effect), (exit) =>
    Exit.isSuccess(exit)
      ? { ok: true as const, value: exit.value as unknown }
      : { ok: false as const, code: (exit.cause.reasons[0] as { error?: { code?: unknown } }).error?.code })

const sdkOutcome = <A>(promise: () => Promise<A>) =>
  Effect.promise(() =>
    promise().then(
      (value) => ({ ok: true as const, value: value as unknown }),
      (e: { code?: unknown }) => ({ ok: false as const, code: e.code })
    )
  )

for (const pinned of [undefined, "2025-11-25"] as const) {
  describe(`McpRequest against the demo server (${pinned ?? "2026-07-28"})`, () => {
    const flags = { surface: true, ...(pinned !== undefined ? { protocolVersion: pinned } : {}) }
    it.live("resources, templates, prompts, completions and ping: the SDK methods' results and errors", () =>
      Effect.scoped(Effect.gen(function*() {
        const conn = yield* McpClient.connect("demo", { type: "stdio", ...demoStdio(flags) })
        const bare = yield* Effect.acquireRelease(
          Effect.promise(async () => {
            const client = new Client({ name: "bare", version: "1" }, pinned === undefined ? { versionNegotiation: { mode: "auto" } } : {})
            await client.connect(new StdioClientTransport({ ...demoStdio(flags), stderr: "ignore" }))
            return client
          }),
          (client) => Effect.promise(() => client.close())
        )
        assert.strictEqual(conn.protocolVersion, bare.getNegotiatedProtocolVersion())
        // Keel's session sends through `request` with a schema, never through these (which probe).
        const sdkMethodCalls: Array<string> = []
        for (const m of ["readResource", "getPrompt", "complete", "listResources", "listResourceTemplates", "listPrompts", "ping"] as const) {
          const original = conn.sdk[m] as (...a: Array<unknown>) => unknown
          ;(conn.sdk as unknown as Record<string, unknown>)[m] = (...a: Array<unknown>) => {
            sdkMethodCalls.push(m)
            return original.apply(conn.sdk, a)
          }
        }
        const bypass = { cacheMode: "bypass" as const }
        const pairs: ReadonlyArray<readonly [string, Effect.Effect<unknown, never>, Effect.Effect<unknown, never>]> = [
          ["readme", outcome(conn.readResource("demo://readme")), sdkOutcome(() => bare.readResource({ uri: "demo://readme" }, bypass))],
          ["template", outcome(conn.readResource("demo://greeting/Ada")), sdkOutcome(() => bare.readResource({ uri: "demo://greeting/Ada" }, bypass))],
          ["missing", outcome(conn.readResource("demo://nope")), sdkOutcome(() => bare.readResource({ uri: "demo://nope" }, bypass))],
          ["prompt", outcome(conn.getPrompt("greet", { name: "Ada" })), sdkOutcome(() => bare.getPrompt({ name: "greet", arguments: { name: "Ada" } }))],
          ["unknown prompt", outcome(conn.getPrompt("nope")), sdkOutcome(() => bare.getPrompt({ name: "nope" }))],
          [
            "complete",
            outcome(conn.complete({ type: "ref/prompt", name: "greet" }, { name: "name", value: "a" })),
            sdkOutcome(() => bare.complete({ ref: { type: "ref/prompt", name: "greet" }, argument: { name: "name", value: "a" } }))
          ],
          ["resources", outcome(conn.listResources()), sdkOutcome(() => bare.listResources(undefined, bypass))],
          ["templates", outcome(conn.listResourceTemplates()), sdkOutcome(() => bare.listResourceTemplates(undefined, bypass))],
          ["prompts", outcome(conn.listPrompts()), sdkOutcome(() => bare.listPrompts(undefined, bypass))]
        ]
        for (const [label, keel, sdk] of pairs) {
          const k = (yield* keel) as { ok: boolean; value?: unknown; code?: unknown }
          const s = (yield* sdk) as { ok: boolean; value?: unknown; code?: unknown }
          assert.strictEqual(k.ok, s.ok, `${label}: Keel ${JSON.stringify(k)} vs SDK ${JSON.stringify(s)}`)
          if (k.ok) assert.deepStrictEqual(k.value, s.value, label)
          else assert.strictEqual(k.code, s.code, label)
        }
        // The expected outcomes themselves, so both being wrong the same way fails too.
        const readme = (yield* conn.readResource("demo://readme")).contents[0] as { uri: string; text?: string }
        assert.strictEqual(readme.uri, "demo://readme")
        assert.isAbove(readme.text?.length ?? 0, 0)
        assert.isTrue((yield* outcome(conn.readResource("demo://nope"))).ok === false)
        assert.deepStrictEqual((yield* conn.complete({ type: "ref/prompt", name: "greet" }, { name: "name", value: "a" })).completion.values, ["Ada", "Alan"])
        yield* conn.ping()
        assert.deepStrictEqual(sdkMethodCalls, [])
      })), 30_000)
  })
}
