/**
 * Requests Keel sends with their result schema, so that the SDK skips its per-request probe.
 *
 * Called without a result schema, SDK v2's `Protocol.request` (2.4.0) finds the method's result validator
 * by validating `undefined` against the era's schema, to learn whether the method exists in the
 * negotiated revision, and builds the failed parse's issues and message, on every request
 * (`McpToolCall`, bench/RESULTS-sdk.md). Given the schema through its public overload
 * `Client.request(request, schema, options)`, it skips the probe and validates the decoded result against
 * that schema instead. For the methods below Keel passes the SDK's own spec schemas (`specTypeSchemas`,
 * loose objects: keys they do not name are kept), so results are checked as before (`McpRequest.test.ts`
 * compares them with the SDK methods' on both protocol eras). `bench/manager-inprocess.bench.ts` measures a
 * `resources/read` through the manager against the raw SDK client, which probes: 2.1 µs less CPU per call
 * in its run of 2026-12-01, for all the manager's own layers on top.
 *
 * `tools/call` has its own path (`McpToolCall`: output-schema checks); `server/discover` is already sent
 * with its schema by the SDK.
 *
 * @since 0.3.0
 */
import { type Client, type RequestOptions, specTypeSchemas, type StandardSchemaV1 } from "@modelcontextprotocol/client"

/**
 * The methods Keel sends with a result schema, and the schema of each.
 *
 * @since 0.3.0
 */
export const resultSchemas = {
  "resources/read": specTypeSchemas.ReadResourceResult,
  "resources/list": specTypeSchemas.ListResourcesResult,
  "resources/templates/list": specTypeSchemas.ListResourceTemplatesResult,
  "prompts/get": specTypeSchemas.GetPromptResult,
  "prompts/list": specTypeSchemas.ListPromptsResult,
  "completion/complete": specTypeSchemas.CompleteResult,
  ping: specTypeSchemas.EmptyResult
} as const

/**
 * A method {@link send} knows the result schema of.
 *
 * @since 0.3.0
 */
export type KnownMethod = keyof typeof resultSchemas

/**
 * Sends `method` with `params` through `Client.request` with the method's result schema (no probe).
 *
 * @example
 * ```ts
 * import * as McpRequest from "@keel/core/McpRequest"
 *
 * // inside an async function, with a connected SDK `client`:
 * // const result = await McpRequest.send(client, "resources/read", { uri: "demo://readme" }, { timeout: 5_000 })
 * ```
 *
 * @since 0.3.0
 */
export const send = <A = unknown>(
  client: Client,
  method: KnownMethod,
  params: Record<string, unknown> | undefined,
  options: RequestOptions | undefined
): Promise<A> =>
  client.request(
    params === undefined ? { method } : { method, params },
    resultSchemas[method] as unknown as StandardSchemaV1<unknown, A>,
    options
  )
