/**
 * `McpMetrics`: the tool-call metrics of Keel's core, as plain Effect `Metric`s. They name no exporter: any
 * OpenTelemetry reader (Prometheus, OTLP, ...) or none at all reads them, so the core never changes when
 * the export does (`@keel/prometheus` is one such reader).
 *
 * Names follow the OpenTelemetry MCP semantic conventions where one exists; Keel's own additions are under
 * `keel.*`. The table gives each metric as an OTel name, as it appears on a Prometheus `/metrics` page
 * (through `@keel/prometheus`, which adds the `_seconds` unit suffix to histograms in seconds and `_total`
 * to counters), and the seed tutorial's name for the same concept.
 *
 * | OTel name                       | on `/metrics`                                     | type      | attributes                                                                                                                  | seed tutorial                     |
 * | ------------------------------- | ------------------------------------------------- | --------- | --------------------------------------------------------------------------------------------------------------------------- | --------------------------------- |
 * | `mcp.client.operation.duration` | `mcp_client_operation_duration_seconds_bucket` / `_sum` / `_count` | histogram, s | `mcp.server.name`, `mcp.method.name`, `gen_ai.tool.name` (tools/call), `network.transport`, `error.type` + `rpc.response.status_code` (failures only) | `tool_execution_duration_seconds` |
 * | (its `_count`)                  | `mcp_client_operation_duration_seconds_count`     |           | as above                                                                                                                    | `tool_execution_total`            |
 * | `keel.tool.calls`               | `keel_tool_calls_total`                           | counter   | `mcp.server.name`, `gen_ai.tool.name`, `outcome` = `success` or the `error.type`                                            | `tool_execution_total`, `tool_execution_errors_total` (`outcome!="success"`) |
 * | `mcp.client.session.duration`   | `mcp_client_session_duration_seconds_bucket` / `_sum` / `_count` | histogram, s | `mcp.server.name`, `network.transport`, `error.type` (session ended by an error)                                  | (none)                            |
 * | `keel.server.connected`         | `keel_server_connected`                           | gauge     | `mcp.server.name`, `network.transport`; 1 while a session is open, else 0                                                   | (none)                            |
 * | `keel.server.tools`             | `keel_server_tools`                               | gauge     | `mcp.server.name`; tools the server advertises                                                                              | (none)                            |
 * | `keel.metrics.label_overflow`   | `keel_metrics_label_overflow_total`               | counter   | `attribute`: records whose label value was replaced by the overflow value                                                   | (none)                            |
 *
 * Attributes:
 * - `mcp.server.name` is Keel's server name (the config key). It is not a semantic-convention attribute
 *   (the conventions have `server.address`, which Keel does not record: a URL may carry a token).
 * - `error.type` is `tool_error` when the result has `isError: true`; the JSON-RPC error code as a string
 *   (e.g. `-32602`, also in `rpc.response.status_code`) for a JSON-RPC error; `cancelled` when the call was
 *   interrupted; the error's `_tag` (`McpTimeoutError`, `McpClosedError`, ...) otherwise; `_OTHER` for a
 *   defect or an untagged error.
 * - Only server names, tool names, method names, transports and outcomes become labels: never arguments,
 *   results, env values, header values or URLs.
 *
 * **Bounded cardinality.** Tool names come from servers, so they are untrusted. The {@link Recorder} admits
 * the first `maxToolsPerServer` distinct tool names of each server and records every later one as
 * `overflowValue` (`_other`), so a server that advertises 100,000 tools makes at most
 * `maxToolsPerServer + 1` tool series. Server names (`maxServers`), method names (`maxMethods`) and error
 * types (`maxErrorTypes`, shared by all servers) are capped the same way; names longer than
 * `maxLabelLength` are cut. Each record is O(1): a few `Map` lookups, and allocations only the first time
 * a series is seen.
 *
 * ```ts
 * import { Effect } from "effect"
 * import { McpMetrics } from "@keel/core" // or: import * as McpMetrics from "@keel/core/McpMetrics"
 *
 * // time a call and record it (error.type is derived from the typed error)
 * const result = connection.callTool("echo", { message: "hi" }).pipe(
 *   McpMetrics.track({ server: "demo", transport: "pipe", method: "tools/call", tool: "echo" })
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"

// ---------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------

/**
 * Attribute keys (OpenTelemetry names; a Prometheus exporter turns `.` into `_`).
 *
 * @since 0.1.0
 * @category names
 */
export const Attributes = {
  server: "mcp.server.name",
  method: "mcp.method.name",
  tool: "gen_ai.tool.name",
  transport: "network.transport",
  errorType: "error.type",
  statusCode: "rpc.response.status_code",
  outcome: "outcome",
  attribute: "attribute"
} as const

/**
 * Metric names (OpenTelemetry names).
 *
 * @since 0.1.0
 * @category names
 */
export const Names = {
  operationDuration: "mcp.client.operation.duration",
  sessionDuration: "mcp.client.session.duration",
  toolCalls: "keel.tool.calls",
  serverConnected: "keel.server.connected",
  serverTools: "keel.server.tools",
  labelOverflow: "keel.metrics.label_overflow"
} as const

/**
 * The unit of each metric that has one (Effect metrics carry no unit; an exporter can read it here).
 *
 * @since 0.1.0
 * @category names
 */
export const Units: Readonly<Record<string, string>> = {
  [Names.operationDuration]: "s",
  [Names.sessionDuration]: "s"
}

/**
 * The bucket boundaries the MCP semantic conventions recommend for `mcp.client.operation.duration`, in
 * seconds.
 *
 * @since 0.1.0
 * @category names
 */
export const OperationDurationBoundaries: ReadonlyArray<number> = [
  0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300
]

/**
 * Boundaries for `mcp.client.session.duration`: the recommended ones, extended to a day, since sessions
 * of a long-running client last hours.
 *
 * @since 0.1.0
 * @category names
 */
export const SessionDurationBoundaries: ReadonlyArray<number> = [
  ...OperationDurationBoundaries, 600, 1800, 3600, 7200, 14_400, 43_200, 86_400
]

/**
 * The `error.type` of a tool result with `isError: true`.
 *
 * @since 0.1.0
 * @category names
 */
export const TOOL_ERROR = "tool_error"

/**
 * The `error.type` of an interrupted (cancelled) operation.
 *
 * @since 0.1.0
 * @category names
 */
export const CANCELLED = "cancelled"

/**
 * The `error.type` of a defect or an error without a `_tag` (the semantic conventions' fallback value).
 *
 * @since 0.1.0
 * @category names
 */
export const OTHER_ERROR = "_OTHER"

// ---------------------------------------------------------------------------------------------------------
// The metrics
// ---------------------------------------------------------------------------------------------------------

/**
 * `mcp.client.operation.duration`: the duration of an MCP request as seen by the client, in seconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const operationDuration = Metric.histogram(Names.operationDuration, {
  description: "Duration of MCP requests as observed by the client (seconds)",
  boundaries: OperationDurationBoundaries
})

/**
 * `mcp.client.session.duration`: how long an MCP session lasted, in seconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const sessionDuration = Metric.histogram(Names.sessionDuration, {
  description: "Duration of MCP sessions as observed by the client (seconds)",
  boundaries: SessionDurationBoundaries
})

/**
 * `keel.tool.calls`: tool calls by server, tool and outcome (`success` or the `error.type`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const toolCalls = Metric.counter(Names.toolCalls, {
  description: "MCP tool calls by server, tool and outcome (success or the error.type)",
  incremental: true
})

/**
 * `keel.server.connected`: 1 while a session with the server is open, 0 after it closed.
 *
 * @since 0.1.0
 * @category metrics
 */
export const serverConnected = Metric.gauge(Names.serverConnected, {
  description: "Whether a session with the MCP server is open (1) or not (0)"
})

/**
 * `keel.server.tools`: how many tools the server advertises (last `tools/list`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const serverTools = Metric.gauge(Names.serverTools, {
  description: "Number of tools the MCP server advertises"
})

/**
 * `keel.metrics.label_overflow`: records whose label value was replaced by the overflow value, by
 * attribute. A rising count means a cap is too low, or a server advertises an unusual number of tools.
 *
 * @since 0.1.0
 * @category metrics
 */
export const labelOverflow = Metric.counter(Names.labelOverflow, {
  description: "Metric records whose label value exceeded its cardinality cap and was recorded as the overflow value",
  incremental: true
})

// ---------------------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------------------

/**
 * Cardinality caps, with defaults:
 *
 * - `maxToolsPerServer` (100): distinct `gen_ai.tool.name` values per server, then `overflowValue`.
 * - `maxServers` (1000): distinct `mcp.server.name` values.
 * - `maxMethods` (64): distinct `mcp.method.name` values.
 * - `maxErrorTypes` (32): distinct `error.type` (and `rpc.response.status_code`) values, for all servers.
 * - `maxLabelLength` (128): longer names are cut to this many characters.
 * - `overflowValue` (`_other`): the value recorded for names over a cap.
 * - `toolNameOnDuration` (`true`): whether `mcp.client.operation.duration` carries `gen_ai.tool.name`
 *   (per-tool latency, as the conventions ask). A histogram series is 17 lines on a Prometheus page, so
 *   with many servers × tools the page grows large (see `bench/RESULTS-prometheus.md`); with `false` the
 *   histogram is per server, method and error type, and per-tool counts stay in `keel.tool.calls`.
 *
 * @since 0.1.0
 * @category config
 */
export const LabelCap = Schema.Struct({
  maxToolsPerServer: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(100))
  ),
  maxServers: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(1000))
  ),
  maxMethods: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(64))
  ),
  maxErrorTypes: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(32))
  ),
  maxLabelLength: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(128))
  ),
  overflowValue: Schema.String.pipe(Schema.withDecodingDefaultKey(Effect.succeed("_other"))),
  toolNameOnDuration: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(true)))
})

/** @since 0.1.0 @category config */
export type LabelCap = typeof LabelCap.Type

/** The default {@link LabelCap}. @since 0.1.0 @category config */
export const defaultLabelCap: LabelCap = Schema.decodeUnknownSync(LabelCap)({})

// ---------------------------------------------------------------------------------------------------------
// Capping
// ---------------------------------------------------------------------------------------------------------

/**
 * A label-value cap: admits the first `capacity` distinct values, then answers `overflow` for any other.
 * O(1) per call; holds at most `capacity` values.
 *
 * @since 0.1.0
 * @category capping
 */
export class CappedLabel {
  readonly capacity: number
  readonly overflow: string
  readonly maxLength: number
  private readonly admitted = new Map<string, string>()

  constructor(capacity: number, overflow: string, maxLength: number) {
    this.capacity = capacity
    this.overflow = overflow
    this.maxLength = maxLength
  }

  /** The label for `value`: itself (cut to `maxLength`) if admitted, else the overflow value. */
  label(value: string): string {
    const known = this.admitted.get(value)
    if (known !== undefined) return known
    if (this.admitted.size >= this.capacity) return this.overflow
    const label = value.length > this.maxLength ? value.slice(0, this.maxLength) : value
    this.admitted.set(value, label)
    return label
  }

  /** How many distinct values were admitted. */
  get size(): number {
    return this.admitted.size
  }
}

// ---------------------------------------------------------------------------------------------------------
// Series
// ---------------------------------------------------------------------------------------------------------

type Hist = Metric.Metric<number, Metric.HistogramState>
type Counter = Metric.Metric<number, Metric.CounterState<number>>

/** The metrics of one outcome (success or one error type) of one (server, method, tool). */
interface OutcomeSeries {
  readonly duration: Hist
  readonly calls: Counter | undefined
}

/** One (transport, server, method, tool) series group; its outcome series are made on first use. */
class OperationSeries {
  /** The histogram's attributes (without `gen_ai.tool.name` when `toolNameOnDuration` is off). */
  readonly attributes: Readonly<Record<string, string>>
  readonly server: string
  /** The (capped) tool label of a tools/call, for `keel.tool.calls`; `undefined` for other methods. */
  readonly tool: string | undefined
  private okSeries: OutcomeSeries | undefined
  private readonly errorSeries = new Map<string, OutcomeSeries>()

  constructor(attributes: Readonly<Record<string, string>>, server: string, tool: string | undefined) {
    this.attributes = attributes
    this.server = server
    this.tool = tool
  }

  private make(extra: Readonly<Record<string, string>> | undefined, outcome: string): OutcomeSeries {
    const attributes = extra === undefined ? this.attributes : { ...this.attributes, ...extra }
    return {
      duration: Metric.histogram(Names.operationDuration, {
        description: operationDuration.description,
        boundaries: OperationDurationBoundaries,
        attributes
      }),
      calls: this.tool !== undefined
        ? Metric.counter(Names.toolCalls, {
          description: toolCalls.description,
          incremental: true,
          attributes: { [Attributes.server]: this.server, [Attributes.tool]: this.tool, [Attributes.outcome]: outcome }
        })
        : undefined
    }
  }

  ok(): OutcomeSeries {
    return this.okSeries ??= this.make(undefined, "success")
  }

  /** `errorType` and `statusCode` are already capped. */
  error(errorType: string, statusCode: string | undefined): OutcomeSeries {
    const key = statusCode === undefined ? errorType : `${errorType}\u0000${statusCode}`
    let series = this.errorSeries.get(key)
    if (series === undefined) {
      series = this.make(
        statusCode === undefined
          ? { [Attributes.errorType]: errorType }
          : { [Attributes.errorType]: errorType, [Attributes.statusCode]: statusCode },
        errorType
      )
      this.errorSeries.set(key, series)
    }
    return series
  }
}

/** Per (transport, server): the method/tool series, with the server's own tool-name cap. */
class ServerSeries {
  readonly server: string
  readonly transport: string
  readonly tools: CappedLabel
  /** method -> raw tool name ("" for no tool) -> series; raw names over the cap are not stored. */
  private readonly methods = new Map<string, Map<string, OperationSeries>>()
  private readonly overflowByMethod = new Map<string, OperationSeries>()

  constructor(server: string, transport: string, tools: CappedLabel) {
    this.server = server
    this.transport = transport
    this.tools = tools
  }

  series(recorder: Recorder, rawMethod: string, rawTool: string | undefined): OperationSeries {
    const method = recorder.methods.label(rawMethod)
    let byTool = this.methods.get(method)
    if (byTool === undefined) {
      byTool = new Map()
      this.methods.set(method, byTool)
    }
    const key = rawTool ?? ""
    const found = byTool.get(key)
    if (found !== undefined) return found
    if (rawTool === undefined) {
      const series = new OperationSeries(this.attributes(recorder, method, undefined), this.server, undefined)
      byTool.set(key, series)
      return series
    }
    const tool = this.tools.label(rawTool)
    if (tool === this.tools.overflow && rawTool !== this.tools.overflow) {
      // Over the cap: share one series per method and do not remember the raw name.
      recorder.overflowed(Attributes.tool)
      let overflow = this.overflowByMethod.get(method)
      if (overflow === undefined) {
        overflow = new OperationSeries(this.attributes(recorder, method, tool), this.server, tool)
        this.overflowByMethod.set(method, overflow)
      }
      return overflow
    }
    const series = new OperationSeries(this.attributes(recorder, method, tool), this.server, tool)
    byTool.set(key, series)
    return series
  }

  private attributes(recorder: Recorder, method: string, tool: string | undefined): Record<string, string> {
    const attributes: Record<string, string> = {
      [Attributes.server]: this.server,
      [Attributes.method]: method,
      [Attributes.transport]: this.transport
    }
    if (tool !== undefined && recorder.cap.toolNameOnDuration) attributes[Attributes.tool] = tool
    return attributes
  }
}

/**
 * The state behind recording: the caps and the series seen so far. One per program (the default
 * {@link Recorder} reference), or one per layer that provides it (`@keel/prometheus` does, from its
 * `labelCap` option). Tests provide a fresh one for isolation.
 *
 * @since 0.1.0
 * @category recording
 */
export class Recorder {
  readonly cap: LabelCap
  readonly servers: CappedLabel
  readonly methods: CappedLabel
  readonly errorTypes: CappedLabel
  /** transport -> raw server name -> series. */
  private readonly byTransport = new Map<string, Map<string, ServerSeries>>()
  /** Open sessions per `connected` series (a pooled server has several): the gauge is `count > 0`. */
  readonly openSessions = new Map<string, number>()
  private readonly overflowCounters = new Map<string, Counter>()

  constructor(cap: Partial<LabelCap> = {}) {
    this.cap = { ...defaultLabelCap, ...cap }
    const c = this.cap
    this.servers = new CappedLabel(c.maxServers, c.overflowValue, c.maxLabelLength)
    this.methods = new CappedLabel(c.maxMethods, c.overflowValue, c.maxLabelLength)
    this.errorTypes = new CappedLabel(c.maxErrorTypes, c.overflowValue, c.maxLabelLength)
  }

  /** The series group of one operation; O(1), allocates only for a series not seen before. */
  series(server: string, transport: string, method: string, tool: string | undefined): OperationSeries {
    let byServer = this.byTransport.get(transport)
    if (byServer === undefined) {
      byServer = new Map()
      this.byTransport.set(transport, byServer)
    }
    let entry = byServer.get(server)
    if (entry === undefined) {
      const label = this.servers.label(server)
      if (label === this.servers.overflow && server !== label) this.overflowed(Attributes.server)
      // Servers over the cap share the overflow entry (keyed by the overflow value, raw name not kept).
      entry = byServer.get(label)
      if (entry === undefined) {
        entry = new ServerSeries(label, transport, new CappedLabel(this.cap.maxToolsPerServer, this.cap.overflowValue, this.cap.maxLabelLength))
        byServer.set(label, entry)
      }
      if (label !== this.servers.overflow || server === label) byServer.set(server, entry)
    }
    return entry.series(this, method, tool)
  }

  /** The admitted label of an error type (or JSON-RPC code). */
  errorType(raw: string): string {
    const label = this.errorTypes.label(raw)
    if (label === this.errorTypes.overflow && raw !== label) this.overflowed(Attributes.errorType)
    return label
  }

  /** Counts one record whose `attribute` value overflowed (only while the program is recording). */
  overflowed(attribute: string): void {
    const context = currentContext
    if (context === undefined) return
    let counter = this.overflowCounters.get(attribute)
    if (counter === undefined) {
      counter = Metric.counter(Names.labelOverflow, {
        description: labelOverflow.description,
        incremental: true,
        attributes: { [Attributes.attribute]: attribute }
      })
      this.overflowCounters.set(attribute, counter)
    }
    counter.updateUnsafe(1, context)
  }
}

/** The context of the record in progress (set around the synchronous recording code). */
let currentContext: Context.Context<never> | undefined

/**
 * The {@link Recorder} in use: a default one shared by the program unless a layer provides another.
 *
 * @since 0.1.0
 * @category recording
 */
export const CurrentRecorder: Context.Reference<Recorder> = Context.Reference<Recorder>(
  "@keel/core/McpMetrics/CurrentRecorder",
  { defaultValue: () => new Recorder() }
)

// ---------------------------------------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------------------------------------

/**
 * One MCP operation to record.
 *
 * - `server`: Keel's server name; `transport`: `pipe` (stdio) or `tcp` (HTTP), see `networkTransport`.
 * - `method`: the MCP method, e.g. `tools/call`; `tool`: the tool name for `tools/call`.
 * - `errorType`: absent on success; see the module doc for the values. `statusCode`: the JSON-RPC error
 *   code, for JSON-RPC errors.
 *
 * @since 0.1.0
 * @category recording
 */
export interface Operation {
  readonly server: string
  readonly transport: string
  readonly method: string
  readonly tool?: string | undefined
  readonly durationSeconds: number
  readonly errorType?: string | undefined
  readonly statusCode?: string | number | undefined
}

const recordSeries = (
  recorder: Recorder,
  series: OperationSeries,
  durationSeconds: number,
  errorType: string | undefined,
  statusCode: string | number | undefined,
  context: Context.Context<never>
): void => {
  currentContext = context
  try {
    const outcome = errorType === undefined
      ? series.ok()
      : series.error(
        recorder.errorType(errorType),
        statusCode === undefined ? undefined : recorder.errorType(String(statusCode))
      )
    outcome.duration.updateUnsafe(durationSeconds, context)
    outcome.calls?.updateUnsafe(1, context)
  } finally {
    currentContext = undefined
  }
}

/** The recorder's series for an operation, looked up with `context` current (for the overflow counter). */
const seriesIn = (
  recorder: Recorder,
  operation: { readonly server: string; readonly transport: string; readonly method: string; readonly tool?: string | undefined },
  context: Context.Context<never>
): OperationSeries => {
  currentContext = context
  try {
    return recorder.series(operation.server, operation.transport, operation.method, operation.tool)
  } finally {
    currentContext = undefined
  }
}

/**
 * Records an operation synchronously, given the context (for hot paths that hold one, e.g. in
 * `Effect.withFiber`).
 *
 * @since 0.1.0
 * @category recording
 */
export const recordOperationUnsafe = (operation: Operation, context: Context.Context<never>): void => {
  const recorder = Context.get(context, CurrentRecorder)
  const series = seriesIn(recorder, operation, context)
  recordSeries(recorder, series, operation.durationSeconds, operation.errorType, operation.statusCode, context)
}

/**
 * Records one MCP operation: its duration in `mcp.client.operation.duration`, and for `tools/call` one
 * `keel.tool.calls`.
 *
 * @since 0.1.0
 * @category recording
 */
export const recordOperation = (operation: Operation): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    recordOperationUnsafe(operation, fiber.context)
    return Effect.void
  })

/**
 * The `error.type` of a failure cause: `cancelled` for interruption only, `tool_error` for
 * `McpToolError`, the JSON-RPC code for `McpProtocolError`, the `_tag` of another tagged error, `_OTHER`
 * for defects and untagged errors.
 *
 * @since 0.1.0
 * @category recording
 */
export const errorTypeOf = (cause: Cause.Cause<unknown>): { readonly errorType: string; readonly statusCode?: string } => {
  for (const reason of cause.reasons) {
    if (reason._tag === "Fail") return errorTypeOfError(reason.error)
  }
  if (Cause.hasInterruptsOnly(cause)) return { errorType: CANCELLED }
  return { errorType: OTHER_ERROR }
}

/**
 * The `error.type` of a typed error (see {@link errorTypeOf}).
 *
 * @since 0.1.0
 * @category recording
 */
export const errorTypeOfError = (error: unknown): { readonly errorType: string; readonly statusCode?: string } => {
  if (typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string") {
    if (error._tag === "McpToolError") return { errorType: TOOL_ERROR }
    if (error._tag === "McpProtocolError" && "code" in error && typeof error.code === "number") {
      const code = String(error.code)
      return { errorType: code, statusCode: code }
    }
    return { errorType: error._tag }
  }
  return { errorType: OTHER_ERROR }
}

const isErrorResult = (value: unknown): boolean =>
  typeof value === "object" && value !== null && (value as { isError?: unknown }).isError === true

/**
 * What {@link track} records: the operation without its duration and outcome.
 *
 * @since 0.1.0
 * @category recording
 */
export interface TrackedOperation {
  readonly server: string
  readonly transport: string
  readonly method: string
  readonly tool?: string | undefined
}

/**
 * Times an effect and records it as one operation. The outcome comes from the exit: success (but
 * `tool_error` for a `CallToolResult` with `isError: true`, as `callToolResult` returns), a typed failure
 * (see {@link errorTypeOf}) or `cancelled` on interruption. No span, one `performance.now()` pair, and
 * the series lookup happens once, when the effect starts.
 *
 * @since 0.1.0
 * @category recording
 */
export const track = (operation: TrackedOperation) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) => {
    const context = fiber.context
    const recorder = Context.get(context, CurrentRecorder)
    const series = seriesIn(recorder, operation, context)
    const start = performance.now()
    return Effect.onExitPrimitive(self, (exit) => {
      const seconds = (performance.now() - start) / 1000
      if (Exit.isSuccess(exit)) {
        recordSeries(recorder, series, seconds, isErrorResult(exit.value) ? TOOL_ERROR : undefined, undefined, context)
      } else {
        const { errorType, statusCode } = errorTypeOf(exit.cause)
        recordSeries(recorder, series, seconds, errorType, statusCode, context)
      }
      return undefined
    })
  })

/**
 * A started operation of the hot path (see {@link startUnsafe}).
 *
 * @since 0.3.0
 * @category recording
 */
export interface OperationTimer {
  readonly recorder: Recorder
  readonly series: OperationSeries
  readonly context: Context.Context<never>
  /** `performance.now()` at the start. */
  readonly start: number
}

/**
 * The synchronous form of {@link track} for hot paths that hold a fiber's context (`Effect.withFiber`):
 * starts timing an operation (the series is looked up now); {@link finishUnsafe} records it from its exit,
 * exactly as `track` does.
 *
 * @since 0.3.0
 * @category recording
 */
export const startUnsafe = (operation: TrackedOperation, context: Context.Context<never>): OperationTimer => {
  const recorder = Context.get(context, CurrentRecorder)
  return { recorder, series: seriesIn(recorder, operation, context), context, start: performance.now() }
}

/**
 * Records an operation started with {@link startUnsafe}: its duration, and its outcome from `exit` (see
 * {@link track}).
 *
 * @since 0.3.0
 * @category recording
 */
export const finishUnsafe = (timer: OperationTimer, exit: Exit.Exit<unknown, unknown>): void => {
  const seconds = (performance.now() - timer.start) / 1000
  if (Exit.isSuccess(exit)) {
    recordSeries(timer.recorder, timer.series, seconds, isErrorResult(exit.value) ? TOOL_ERROR : undefined, undefined, timer.context)
  } else {
    const { errorType, statusCode } = errorTypeOf(exit.cause)
    recordSeries(timer.recorder, timer.series, seconds, errorType, statusCode, timer.context)
  }
}

// ---------------------------------------------------------------------------------------------------------
// Sessions and servers
// ---------------------------------------------------------------------------------------------------------

/**
 * Marks a session with `server` as open for the life of the scope: `keel.server.connected` is 1 until
 * the scope closes, then 0, and the session's length goes to `mcp.client.session.duration` (with
 * `error.type` when the scope closed with a failure).
 *
 * @since 0.1.0
 * @category sessions
 */
export const trackSession = (server: string, transport: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.withFiber((fiber) => {
    const recorder = Context.get(fiber.context, CurrentRecorder)
    const label = recorder.servers.label(server)
    const base = { [Attributes.server]: label, [Attributes.transport]: transport }
    const connected = Metric.withAttributes(serverConnected, base)
    const key = `${transport}\u0000${label}`
    const open = recorder.openSessions
    return Effect.acquireRelease(
      Effect.suspend(() => {
        open.set(key, (open.get(key) ?? 0) + 1)
        return Effect.as(Metric.update(connected, 1), performance.now())
      }),
      (start, exit) => {
        const seconds = (performance.now() - start) / 1000
        const attributes = Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)
          ? { ...base, [Attributes.errorType]: recorder.errorType(errorTypeOf(exit.cause).errorType) }
          : base
        const left = (open.get(key) ?? 1) - 1
        if (left > 0) open.set(key, left)
        else open.delete(key)
        return Effect.andThen(
          Metric.update(connected, left > 0 ? 1 : 0),
          Metric.update(Metric.withAttributes(sessionDuration, attributes), seconds)
        )
      }
    )
  })

/**
 * Records how many tools `server` advertises (`keel.server.tools`), e.g. after each `tools/list`.
 *
 * @since 0.1.0
 * @category sessions
 */
export const recordToolCount = (server: string, count: number): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    const recorder = Context.get(fiber.context, CurrentRecorder)
    return Metric.update(Metric.withAttributes(serverTools, { [Attributes.server]: recorder.servers.label(server) }), count)
  })

/**
 * Provides a fresh {@link Recorder} with these caps to an effect.
 *
 * @since 0.1.0
 * @category recording
 */
export const withLabelCap = (cap: Partial<LabelCap>) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(self, CurrentRecorder, new Recorder(cap))
