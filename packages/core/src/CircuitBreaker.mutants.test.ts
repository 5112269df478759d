/**
 * Tests that pin `CircuitBreaker.ts`'s hot path for mutation testing (`npm run mutation`, see MUTATION.md):
 * every branch of `defaultClassifier`, as a table.
 */
import { assert, describe, it } from "@effect/vitest"
import * as CB from "./CircuitBreaker.ts"

describe("CircuitBreaker.defaultClassifier (mutation pins)", () => {
  const cases: ReadonlyArray<readonly [unknown, boolean, CB.Verdict]> = [
    [{ _tag: "McpProtocolError", code: -32602 }, true, "ignore"], // invalid params: the caller's mistake
    [{ _tag: "McpProtocolError", code: -32601 }, true, "ignore"], // method not found
    [{ _tag: "McpProtocolError", code: -32603 }, false, "failure"], // internal error: the server's
    [{ _tag: "McpProtocolError" }, false, "failure"],
    [{ _tag: "McpConnectError" }, false, "failure"],
    [{ _tag: "McpTimeoutError" }, false, "failure"],
    [{ _tag: "McpClosedError" }, false, "failure"],
    [{ _tag: "McpToolError" }, true, "failure"],
    [{ _tag: "McpToolError" }, false, "ignore"],
    ...[
      "InvalidArgumentsError",
      "InvalidToolError",
      "McpConfigError",
      "UnknownToolError",
      "UnknownServerError",
      "McpMessageTooLargeError",
      "AuthorizationRequiredError",
      "McpAuthError",
      "CircuitOpenError",
      "PoolTimeoutError",
      "PoolClosedError"
    ].map((tag) => [{ _tag: tag }, true, "ignore"] as const),
    [{ _tag: "SomethingElse" }, false, "failure"],
    [{ code: -32602 }, false, "failure"], // no _tag
    [new Error("boom"), false, "failure"],
    [null, true, "failure"],
    ["McpToolError", false, "failure"], // a string is not a tagged error
    [undefined, false, "failure"]
  ]
  it("classifies every known error tag, and anything else as a failure", () => {
    for (const [error, countToolErrors, verdict] of cases) {
      assert.strictEqual(CB.defaultClassifier(error, countToolErrors), verdict, JSON.stringify([error, countToolErrors]))
    }
  })
})
