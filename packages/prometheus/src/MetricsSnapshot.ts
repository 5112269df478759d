/**
 * `MetricsSnapshot`: a typed, Schema-encodable view of Keel's metrics (the seed's `GetSnapshot()`),
 * computed from the Effect metric registry, so it needs no exporter and agrees with what `/metrics`
 * serves.
 *
 * What each field is read from, and what it is when its component is not in the program:
 *
 * | field                                     | read from                                                          | when absent                       |
 * | ----------------------------------------- | ------------------------------------------------------------------ | --------------------------------- |
 * | `servers[].connected`, `.transport`       | `keel.server.connected` (McpMetrics.trackSession)                  | `false`, no `transport`           |
 * | `servers[].tools`                         | `keel.server.tools` (McpMetrics.recordToolCount)                   | `0`                               |
 * | `servers[].calls`, `.errors`, `.errorsByType` | `mcp.client.operation.duration` series with `mcp.method.name=tools/call` | `0`, `{}`                 |
 * | `servers[].p50Seconds`, `.p99Seconds`     | the same histograms, merged; estimated within a bucket (linear), clamped to the observed min/max | absent (no calls) |
 * | `servers[].breaker`                       | `keel_circuit_breaker_state{server}`                               | absent (no breaker for it)        |
 * | `tools`                                   | totals of the above (seed: `ToolMetrics.TotalCalls`, `.Errors`)    | zeros                             |
 * | `cache`                                   | `keel_cache_requests`, `keel_cache_entries`, `keel_cache_evictions`, summed over caches | absent (no cache metric) |
 * | `pool`                                    | `keel_pool_connections{state}` (total/active/idle/pending), `keel_pool_acquired`, `keel_pool_acquire_duration_seconds` (waits only) | absent (no pool metric) |
 *
 * @since 0.1.0
 */
import * as McpMetrics from "@keel/core/McpMetrics"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"

// ---------------------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------------------

/**
 * A breaker state as a word (the gauge's 0..5).
 *
 * @since 0.1.0
 * @category schemas
 */
export const BreakerState = Schema.Literals(["closed", "open", "half-open", "forced-open", "disabled", "metrics-only"])

/** @since 0.1.0 @category models */
export type BreakerState = typeof BreakerState.Type

const breakerStates: ReadonlyArray<BreakerState> = ["closed", "open", "half-open", "forced-open", "disabled", "metrics-only"]

/**
 * One server.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ServerSnapshot = Schema.Struct({
  server: Schema.String,
  transport: Schema.optionalKey(Schema.String),
  connected: Schema.Boolean,
  tools: Schema.Number,
  calls: Schema.Number,
  errors: Schema.Number,
  errorsByType: Schema.Record(Schema.String, Schema.Number),
  p50Seconds: Schema.optionalKey(Schema.Number),
  p99Seconds: Schema.optionalKey(Schema.Number),
  breaker: Schema.optionalKey(BreakerState)
})

/** @since 0.1.0 @category models */
export type ServerSnapshot = typeof ServerSnapshot.Type

/**
 * The caches, summed (seed: `CacheMetrics`). `hitRatio` is hits (fresh and stale) over requests, 0 with
 * no requests.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CacheSnapshot = Schema.Struct({
  entries: Schema.Number,
  hits: Schema.Number,
  staleHits: Schema.Number,
  misses: Schema.Number,
  hitRatio: Schema.Number,
  evictions: Schema.Number
})

/** @since 0.1.0 @category models */
export type CacheSnapshot = typeof CacheSnapshot.Type

/**
 * The connection pool, summed over servers (seed: `PoolMetrics`): sessions `total` (open, including
 * draining), `active` (lent to a borrower), `idle`; `waiting` borrowers; `acquires` (borrows so far);
 * `acquireP99Seconds` over the borrows that had to wait (absent when none waited).
 *
 * @since 0.1.0
 * @category schemas
 */
export const PoolSnapshot = Schema.Struct({
  active: Schema.Number,
  idle: Schema.Number,
  total: Schema.Number,
  waiting: Schema.Number,
  acquires: Schema.Number,
  acquireP99Seconds: Schema.optionalKey(Schema.Number)
})

/** @since 0.1.0 @category models */
export type PoolSnapshot = typeof PoolSnapshot.Type

/**
 * The whole view.
 *
 * @since 0.1.0
 * @category schemas
 */
export const MetricsSnapshot = Schema.Struct({
  servers: Schema.Array(ServerSnapshot),
  tools: Schema.Struct({ calls: Schema.Number, errors: Schema.Number }),
  cache: Schema.optionalKey(CacheSnapshot),
  pool: Schema.optionalKey(PoolSnapshot)
})

/** @since 0.1.0 @category models */
export type MetricsSnapshot = typeof MetricsSnapshot.Type

// ---------------------------------------------------------------------------------------------------------
// Histograms
// ---------------------------------------------------------------------------------------------------------

/**
 * Histogram states merged (same boundaries), for quantile estimates over several series.
 *
 * @since 0.1.0
 * @category histograms
 */
export interface MergedHistogram {
  readonly boundaries: Array<number>
  readonly cumulative: Array<number>
  count: number
  min: number
  max: number
}

/** @since 0.1.0 @category histograms */
export const emptyHistogram = (): MergedHistogram => ({
  boundaries: [],
  cumulative: [],
  count: 0,
  min: Number.POSITIVE_INFINITY,
  max: Number.NEGATIVE_INFINITY
})

/** Adds `state` into `into` (boundaries are taken from the first state). @since 0.1.0 @category histograms */
export const mergeHistogram = (into: MergedHistogram, state: Metric.HistogramState): void => {
  if (state.count === 0) return
  if (into.boundaries.length === 0) {
    for (const [b] of state.buckets) {
      into.boundaries.push(b)
      into.cumulative.push(0)
    }
  }
  state.buckets.forEach(([, c], i) => {
    if (i < into.cumulative.length) into.cumulative[i]! += c
  })
  into.count += state.count
  into.min = Math.min(into.min, state.min)
  into.max = Math.max(into.max, state.max)
}

/**
 * The `q` quantile (0..1) of a histogram: found by bucket and interpolated linearly inside it (as
 * Prometheus' `histogram_quantile` does), then clamped to the observed min and max (so the overflow
 * bucket answers the max). `undefined` when the histogram is empty.
 *
 * @since 0.1.0
 * @category histograms
 */
export const quantile = (h: MergedHistogram, q: number): number | undefined => {
  if (h.count === 0) return undefined
  const rank = q * h.count
  let lower = 0
  let below = 0
  for (let i = 0; i < h.boundaries.length; i++) {
    const upper = h.boundaries[i]!
    const cum = h.cumulative[i]!
    if (cum >= rank && cum > below) {
      const estimate = lower + (upper - lower) * ((rank - below) / (cum - below))
      return Math.min(Math.max(estimate, h.min), h.max)
    }
    lower = upper
    below = cum
  }
  return h.max
}

// ---------------------------------------------------------------------------------------------------------
// Snapshot
// ---------------------------------------------------------------------------------------------------------

const num = (v: number | bigint): number => Number(v)

interface ServerAcc {
  transport: string | undefined
  connected: boolean
  tools: number
  calls: number
  errors: number
  readonly errorsByType: Record<string, number>
  readonly latency: MergedHistogram
  breaker: BreakerState | undefined
}

/**
 * Builds the snapshot from a registry snapshot (`Metric.snapshot`).
 *
 * @since 0.1.0
 * @category snapshot
 */
export const fromMetrics = (metrics: ReadonlyArray<Metric.Metric.Snapshot>): MetricsSnapshot => {
  const servers = new Map<string, ServerAcc>()
  const server = (name: string): ServerAcc => {
    let s = servers.get(name)
    if (s === undefined) {
      s = { transport: undefined, connected: false, tools: 0, calls: 0, errors: 0, errorsByType: {}, latency: emptyHistogram(), breaker: undefined }
      servers.set(name, s)
    }
    return s
  }
  let cache: { entries: number; hits: number; staleHits: number; misses: number; evictions: number } | undefined
  let pool: { total: number; active: number; idle: number; waiting: number; acquires: number; acquire: MergedHistogram } | undefined
  const theCache = () => (cache ??= { entries: 0, hits: 0, staleHits: 0, misses: 0, evictions: 0 })
  const thePool = () => (pool ??= { total: 0, active: 0, idle: 0, waiting: 0, acquires: 0, acquire: emptyHistogram() })

  for (const m of metrics) {
    const a = m.attributes ?? {}
    switch (m.id) {
      case McpMetrics.Names.operationDuration: {
        const name = a[McpMetrics.Attributes.server]
        if (name === undefined || a[McpMetrics.Attributes.method] !== "tools/call") break
        const s = server(name)
        const h = m.state as Metric.HistogramState
        s.calls += h.count
        const errorType = a[McpMetrics.Attributes.errorType]
        if (errorType !== undefined) {
          s.errors += h.count
          s.errorsByType[errorType] = (s.errorsByType[errorType] ?? 0) + h.count
        }
        mergeHistogram(s.latency, h)
        break
      }
      case McpMetrics.Names.serverConnected: {
        const name = a[McpMetrics.Attributes.server]
        if (name === undefined) break
        const s = server(name)
        if (num((m.state as Metric.GaugeState<number>).value) > 0) {
          s.connected = true
          s.transport = a[McpMetrics.Attributes.transport]
        } else if (!s.connected) {
          s.transport ??= a[McpMetrics.Attributes.transport]
        }
        break
      }
      case McpMetrics.Names.serverTools: {
        const name = a[McpMetrics.Attributes.server]
        if (name !== undefined) server(name).tools = num((m.state as Metric.GaugeState<number>).value)
        break
      }
      case "keel_circuit_breaker_state": {
        const name = a["server"]
        if (name === undefined) break
        server(name).breaker = breakerStates[num((m.state as Metric.GaugeState<number>).value)] ?? "closed"
        break
      }
      case "keel_cache_requests": {
        const c = theCache()
        const n = num((m.state as Metric.CounterState<number>).count)
        if (a["result"] === "hit") c.hits += n
        else if (a["result"] === "stale") c.staleHits += n
        else if (a["result"] === "miss") c.misses += n
        break
      }
      case "keel_cache_entries":
        theCache().entries += num((m.state as Metric.GaugeState<number>).value)
        break
      case "keel_cache_evictions":
        theCache().evictions += num((m.state as Metric.CounterState<number>).count)
        break
      case "keel_pool_connections": {
        const p = thePool()
        const n = num((m.state as Metric.GaugeState<number>).value)
        if (a["state"] === "total") p.total += n
        else if (a["state"] === "active") p.active += n
        else if (a["state"] === "idle") p.idle += n
        else if (a["state"] === "pending") p.waiting += n
        break
      }
      case "keel_pool_acquired":
        thePool().acquires += num((m.state as Metric.CounterState<number>).count)
        break
      case "keel_pool_acquire_duration_seconds":
        mergeHistogram(thePool().acquire, m.state as Metric.HistogramState)
        break
    }
  }

  const serverList: Array<ServerSnapshot> = []
  let calls = 0
  let errors = 0
  for (const [name, s] of [...servers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    calls += s.calls
    errors += s.errors
    const p50 = quantile(s.latency, 0.5)
    const p99 = quantile(s.latency, 0.99)
    serverList.push({
      server: name,
      ...(s.transport !== undefined ? { transport: s.transport } : {}),
      connected: s.connected,
      tools: s.tools,
      calls: s.calls,
      errors: s.errors,
      errorsByType: s.errorsByType,
      ...(p50 !== undefined ? { p50Seconds: p50 } : {}),
      ...(p99 !== undefined ? { p99Seconds: p99 } : {}),
      ...(s.breaker !== undefined ? { breaker: s.breaker } : {})
    })
  }
  const result: { -readonly [K in keyof MetricsSnapshot]: MetricsSnapshot[K] } = { servers: serverList, tools: { calls, errors } }
  if (cache !== undefined) {
    const c: NonNullable<typeof cache> = cache
    const requests = c.hits + c.staleHits + c.misses
    result.cache = { ...c, hitRatio: requests === 0 ? 0 : (c.hits + c.staleHits) / requests }
  }
  if (pool !== undefined) {
    const p: NonNullable<typeof pool> = pool
    const p99 = quantile(p.acquire, 0.99)
    result.pool = {
      active: p.active,
      idle: p.idle,
      total: p.total,
      waiting: p.waiting,
      acquires: p.acquires,
      ...(p99 !== undefined ? { acquireP99Seconds: p99 } : {})
    }
  }
  return result
}

/**
 * The snapshot of the metrics in the current registry.
 *
 * @since 0.1.0
 * @category snapshot
 */
export const snapshot: Effect.Effect<MetricsSnapshot> = Effect.map(Metric.snapshot, fromMetrics)
