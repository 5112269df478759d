/**
 * `tools/call` for a tool whose definition Keel holds, without the SDK client's per-call extra work.
 *
 * `Client.callTool` in SDK v2 (2.4.0) does, on every call, besides the request itself:
 * - an awaited lookup of the tool's output validator in its response cache, and the `Mcp-Param-*` header scan;
 * - inside `Protocol.request`, `codecResultValidator(codec, method)`, which validates `undefined` against the
 *   method's result schema only to learn whether the method exists in the negotiated era; the failed zod
 *   parse then builds its issues and an error message, on every request.
 *
 * Measured in `bench/sdk.bench.ts` (RESULTS-sdk.md): the probe alone costs several µs per request, more than
 * the real validation of an `add` result. The SDK skips the probe when the caller passes a result schema to
 * `Client.request(request, schema, options)` (its public overload), so for a tool whose definition Keel has
 * (from its cached `tools/list`), Keel sends `tools/call` that way with {@link callToolResultSchema} and
 * checks `structuredContent` against the tool's `outputSchema` itself, with a validator compiled once per
 * tool object. The outcomes are the SDK's: the same result object, and for a missing or non-conforming
 * `structuredContent` the same `ProtocolError` codes and messages as `Client.callTool`
 * (McpToolCall.test.ts compares both paths on the same server).
 *
 * Not taken (the SDK's `callTool` is used): a tool whose `inputSchema` declares `x-mcp-header` on a
 * 2026-07-28 HTTP session (the SDK mirrors those headers), a tool whose `outputSchema` does not compile (the
 * SDK reports it), and sessions created with their own `jsonSchemaValidator`.
 *
 * @since 0.3.0
 */
import {
  type CallToolResult,
  type Client,
  ProtocolError,
  ProtocolErrorCode,
  type RequestOptions,
  specTypeSchemas,
  type StandardSchemaV1,
  type Tool
} from "@modelcontextprotocol/client"
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/client/validators/ajv"

/**
 * Keys of other result families (tasks, input-required) that must not be read as an empty `tools/call`
 * success when `content` is missing: the era codec's `CallToolResultWireSchema` refuses them, and so does
 * {@link callToolResultSchema}.
 */
const FOREIGN_FAMILY_KEYS = ["task", "inputRequests", "requestState"] as const

const specCallToolResult = specTypeSchemas.CallToolResult as unknown as StandardSchemaV1<unknown, CallToolResult>

/**
 * The result schema Keel hands to `Client.request` for `tools/call`: the SDK's own `CallToolResult` spec
 * schema (it defaults a missing `content` to `[]`, as the era codec does), behind the codec's guard against
 * another result family's body.
 *
 * @since 0.3.0
 */
export const callToolResultSchema: StandardSchemaV1<unknown, CallToolResult> = {
  "~standard": {
    version: 1,
    vendor: "keel",
    validate: (value) => {
      if (typeof value === "object" && value !== null && !Array.isArray(value) && (value as { content?: unknown }).content === undefined) {
        for (const key of FOREIGN_FAMILY_KEYS) {
          if (key in value) {
            return {
              issues: [{
                message: `content is required when the body carries '${key}' — another result family cannot default into an empty tools/call success`
              }]
            }
          }
        }
      }
      return specCallToolResult["~standard"].validate(value)
    }
  }
}

type OutputCheck = (value: unknown) => { readonly valid: boolean; readonly errorMessage?: string | undefined }

/** Per tool object: its compiled output validator, `null` without `outputSchema`, `"invalid"` if it does not compile. */
const outputChecks = new WeakMap<Tool, OutputCheck | null | "invalid">()
let validator: AjvJsonSchemaValidator | undefined

const outputCheckOf = (tool: Tool): OutputCheck | null | "invalid" => {
  let check = outputChecks.get(tool)
  if (check === undefined) {
    if (tool.outputSchema === undefined) check = null
    else {
      try {
        validator ??= new AjvJsonSchemaValidator()
        check = validator.getValidator(tool.outputSchema as never) as OutputCheck
      } catch {
        check = "invalid"
      }
    }
    outputChecks.set(tool, check)
  }
  return check
}

/**
 * `data` of the `ProtocolError` Keel raises when a tool's result breaks the tool's own `outputSchema` (no
 * `structuredContent`, or content that does not conform). The code and message are the SDK's (-32602
 * "invalid params" for content that does not conform, as `Client.callTool` reports it), but the fault is
 * the server's answer, not the caller's arguments: `McpError.isCallerRefusal` reads this mark, so the
 * breaker and `lastError` count it as the server's failure.
 *
 * @since 0.3.0
 */
export const outputSchemaViolation = { reason: "outputSchema" } as const

/** What `Client.callTool` checks after the response: `structuredContent` present and conforming. */
const checkOutput = (name: string, check: OutputCheck, result: CallToolResult): CallToolResult => {
  if (result.isError) return result
  if (result.structuredContent === undefined) {
    throw new ProtocolError(
      ProtocolErrorCode.InvalidRequest,
      `Tool ${name} has an output schema but did not return structured content`,
      outputSchemaViolation
    )
  }
  let outcome: ReturnType<OutputCheck>
  try {
    outcome = check(result.structuredContent)
  } catch (error) {
    throw new ProtocolError(
      ProtocolErrorCode.InvalidParams,
      `Failed to validate structured content: ${error instanceof Error ? error.message : String(error)}`,
      outputSchemaViolation
    )
  }
  if (!outcome.valid) {
    throw new ProtocolError(
      ProtocolErrorCode.InvalidParams,
      `Structured content does not match the tool's output schema: ${outcome.errorMessage}`,
      outputSchemaViolation
    )
  }
  return result
}

/**
 * Whether {@link callToolDirect} takes `tool` (its `outputSchema`, if any, compiles); the validator is
 * compiled and kept on the first ask.
 *
 * @since 0.3.0
 */
export const sendsDirect = (tool: Tool): boolean => outputCheckOf(tool) !== "invalid"

/**
 * Sends `tools/call` for `tool` through `Client.request` with {@link callToolResultSchema} and checks the
 * output like `Client.callTool`; `undefined` when the tool's `outputSchema` does not compile (call
 * `Client.callTool`, which reports it).
 *
 * @since 0.3.0
 */
export const callToolDirect = (
  client: Client,
  params: { readonly name: string; readonly arguments: Record<string, unknown>; readonly _meta?: object },
  tool: Tool,
  options: RequestOptions
): Promise<CallToolResult> | undefined => {
  const check = outputCheckOf(tool)
  if (check === "invalid") return undefined
  const sent = client.request({ method: "tools/call", params: params as Record<string, unknown> }, callToolResultSchema, options)
  return check === null ? sent : sent.then((result) => checkOutput(params.name, check, result))
}
