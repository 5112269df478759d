/**
 * `PrometheusMetrics`: every Effect `Metric` of the program (Keel's and the application's own) exported
 * as `@effect/opentelemetry` and `@opentelemetry/exporter-prometheus` export them (byte for byte; read
 * from the registry directly by default, see {@link RegistryExposition}), served at `/metrics`, plus a
 * typed {@link MetricsSnapshot}. This is the seed's `NewPrometheusMetrics(manager, cache, pool)`,
 * `Handler()` and `GetSnapshot()`: Keel's components need not be passed in, since they record into the
 * program's metric registry, which this layer reads.
 *
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { PrometheusMetrics } from "@keel/prometheus"
 *
 * const program = Effect.gen(function*() {
 *   const metrics = yield* PrometheusMetrics
 *   console.log(`scrape ${metrics.url}`)           // http://127.0.0.1:9464/metrics
 *   const snapshot = yield* metrics.snapshot        // servers, tools, cache, pool
 * }).pipe(Effect.provide(PrometheusMetrics.layer({ port: 9464 })))
 * ```
 *
 * To send the same metrics elsewhere (OTLP, a periodic reader, several readers at once), use
 * {@link PrometheusMetrics.layerReader} with any OpenTelemetry `MetricReader`: nothing in the core
 * changes.
 *
 * @since 0.1.0
 */
import * as Resource from "@effect/opentelemetry/Resource"
import * as McpMetrics from "@keel/core/McpMetrics"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import type { MetricReader } from "@opentelemetry/sdk-metrics"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import * as MetricExport from "./MetricExport.ts"
import { fromMetrics, type MetricsSnapshot } from "./MetricsSnapshot.ts"
import * as PrometheusText from "./PrometheusText.ts"
import { Page, RegistryExposition } from "./RegistryExposition.ts"

// ---------------------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------------------

/**
 * The layer's settings, with defaults:
 *
 * - `host` (`127.0.0.1`): the interface `/metrics` listens on. Loopback by default: metrics name your
 *   servers and tools, so exposing them beyond the machine is a choice to make explicitly.
 * - `port` (9464, the registered Prometheus-exporter port): `0` picks a free port (read it back from
 *   {@link PrometheusMetricsShape.port}).
 * - `path` (`/metrics`): the scrape path; every other path answers 404.
 * - `serve` (`true`): `false` starts no server; use {@link PrometheusMetricsShape.handler} in your own, or
 *   {@link PrometheusMetricsShape.scrape}.
 * - `serviceName` (`keel`), `serviceVersion` (`0.1.0`): the OpenTelemetry resource (the `target_info`
 *   series).
 * - `prefix` (empty): prepended to every metric name.
 * - `withoutScopeInfo` (`true`): leaves out the `otel_scope_*` labels, which would repeat
 *   `@effect/opentelemetry/Metrics` on every series.
 * - `serializer` (`keel`): `keel` reads the metric registry itself with {@link RegistryExposition}
 *   (byte-identical to the exporter's collect and serializer, which tests check) and keeps the page
 *   between scrapes as blocks of bytes, rewriting only the blocks whose series changed; a registry
 *   holding a `Summary` goes through the exporter's collect and {@link PrometheusText} instead. `otel`
 *   uses the exporter's collect and its own `PrometheusSerializer` (about 1 s a scrape for 100 servers ×
 *   50 tools, against about 15 ms).
 * - `gzip` (`true`): answers `Content-Encoding: gzip` when the scraper sends `Accept-Encoding: gzip`
 *   (Prometheus does): a page of 15.8 MB for 100 servers × 50 tools goes out as about 0.47 MB. With
 *   `keel`, the body is the kept blocks' gzip members one after the other (a multi-member gzip stream,
 *   which Prometheus' Go reader and zlib decode whole), so only changed blocks are
 *   compressed again, a batch at a time as the body is written (then the body is chunked; a page whose
 *   members are all kept goes out with a `Content-Length`). Members compress about 10 % worse than one
 *   stream would.
 * - `gzipLevel` (1): zlib's level. 1 is the fastest and, on this very repetitive text, within a few
 *   percent of 3's size; 6 is about 17 % smaller and takes about twice as long to compress (a cost paid
 *   only for the blocks that changed; see the benchmark).
 * - `labelCap`: the cardinality caps of the tool-call metrics (see `McpMetrics.LabelCap`: 100 tools per
 *   server, then `_other`).
 *
 * @since 0.1.0
 * @category config
 */
export const PrometheusMetricsConfig = Schema.Struct({
  host: Schema.NonEmptyString.pipe(Schema.withDecodingDefaultKey(Effect.succeed("127.0.0.1"))),
  port: Schema.Port.pipe(Schema.withDecodingDefaultKey(Effect.succeed(9464))),
  path: Schema.String.check(Schema.isStartingWith("/")).pipe(Schema.withDecodingDefaultKey(Effect.succeed("/metrics"))),
  serve: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(true))),
  serviceName: Schema.NonEmptyString.pipe(Schema.withDecodingDefaultKey(Effect.succeed("keel"))),
  serviceVersion: Schema.String.pipe(Schema.withDecodingDefaultKey(Effect.succeed("0.1.0"))),
  prefix: Schema.String.pipe(Schema.withDecodingDefaultKey(Effect.succeed(""))),
  withoutScopeInfo: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(true))),
  serializer: Schema.Literals(["keel", "otel"]).pipe(Schema.withDecodingDefaultKey(Effect.succeed("keel" as const))),
  gzip: Schema.Boolean.pipe(Schema.withDecodingDefaultKey(Effect.succeed(true))),
  gzipLevel: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 9 })).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(1))
  ),
  labelCap: McpMetrics.LabelCap.pipe(Schema.withDecodingDefaultKey(Effect.succeed({})))
})

/** @since 0.1.0 @category config */
export type PrometheusMetricsConfig = typeof PrometheusMetricsConfig.Type

/** The config as written (every field optional). @since 0.1.0 @category config */
export type PrometheusMetricsConfigInput = typeof PrometheusMetricsConfig.Encoded

/**
 * The layer could not start: its config is invalid (`reason: "config"`, `message` names the field) or
 * `/metrics` could not listen (`reason: "listen"`, e.g. the port is taken).
 *
 * @since 0.1.0
 * @category errors
 */
export class PrometheusMetricsError extends Schema.TaggedError<PrometheusMetricsError>()("PrometheusMetricsError", {
  reason: Schema.Literals(["config", "listen"]),
  message: Schema.String
}) {}

// ---------------------------------------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------------------------------------

/**
 * The running exporter.
 *
 * @since 0.1.0
 * @category models
 */
export interface PrometheusMetricsShape {
  readonly config: PrometheusMetricsConfig
  /** The bound host and port (the real port when `port: 0`), or the configured ones with `serve: false`. */
  readonly host: string
  readonly port: number
  /** `http://host:port/path`. */
  readonly url: string
  /**
   * Serves the exposition for any request (seed: `Handler()`), gzipped when the request's
   * `Accept-Encoding` allows it (and `gzip` is on), written in batches that wait for the socket to
   * drain; mount it in your own server.
   */
  readonly handler: (request: IncomingMessage, response: ServerResponse) => void
  /** The exposition text, as `/metrics` serves it, without HTTP. */
  readonly scrape: Effect.Effect<string>
  /** A typed view of the metrics (seed: `GetSnapshot()`); see `MetricsSnapshot`. */
  readonly snapshot: Effect.Effect<MetricsSnapshot>
}

/**
 * The exporter as a service.
 *
 * @since 0.1.0
 * @category services
 */
export class PrometheusMetrics extends Context.Service<PrometheusMetrics, PrometheusMetricsShape>()(
  "@keel/prometheus/PrometheusMetrics"
) {
  /**
   * Exports the program's metrics in the Prometheus format at `http://127.0.0.1:9464/metrics` (see
   * {@link PrometheusMetricsConfig} for the options). Also provides the tool-call metrics' recorder with
   * the configured `labelCap`. The server stops when the layer's scope closes.
   */
  static readonly layer = (
    config: PrometheusMetricsConfigInput = {}
  ): Layer.Layer<PrometheusMetrics, PrometheusMetricsError> =>
    Layer.effectContext(Effect.map(make(config), ({ service, recorder }) =>
      Context.make(PrometheusMetrics, service).pipe(Context.add(McpMetrics.CurrentRecorder, recorder))))

  /**
   * Exports the program's metrics to any OpenTelemetry `MetricReader`s instead (OTLP, periodic, in-memory,
   * several at once). The core records the same way; only the reader changes.
   *
   * - `temporality` (`cumulative`): `delta` for backends that want it.
   * - `labelCap`: as in {@link PrometheusMetrics.layer}.
   */
  static readonly layerReader = (
    readers: () => MetricReader | ReadonlyArray<MetricReader>,
    options: {
      readonly serviceName?: string | undefined
      readonly serviceVersion?: string | undefined
      readonly temporality?: "cumulative" | "delta" | undefined
      readonly labelCap?: Partial<McpMetrics.LabelCap> | undefined
    } = {}
  ): Layer.Layer<never> =>
    Layer.effectContext(
      Effect.gen(function*() {
        const reader = readers()
        yield* MetricExport.register(Array.isArray(reader) ? reader : [reader as MetricReader], {
          temporality: options.temporality
        })
        return Context.make(McpMetrics.CurrentRecorder, new McpMetrics.Recorder(options.labelCap ?? {}))
      }).pipe(
        Effect.provide(Resource.layer({
          serviceName: options.serviceName ?? "keel",
          serviceVersion: options.serviceVersion ?? "0.1.0"
        }))
      )
    ) as Layer.Layer<never>
}

const listen = (server: Server, port: number, host: string): Promise<AddressInfo> =>
  new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e)
    server.once("error", onError)
    server.listen(port, host, () => {
      server.off("error", onError)
      resolve(server.address() as AddressInfo)
    })
  })

const close = (server: Server): Promise<void> =>
  new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })

/**
 * Whether an `Accept-Encoding` header accepts gzip: `gzip` (or `x-gzip`, or `*` when gzip is not named)
 * with a quality above 0.
 */
export const acceptsGzip = (header: string | ReadonlyArray<string> | undefined): boolean => {
  if (header === undefined) return false
  const value = typeof header === "string" ? header : header.join(",")
  let star: boolean | undefined
  for (const part of value.split(",")) {
    const [coding = "", ...params] = part.split(";")
    const name = coding.trim().toLowerCase()
    if (name !== "gzip" && name !== "x-gzip" && name !== "*") continue
    let q = 1
    for (const param of params) {
      const [k, v] = param.split("=")
      if (k?.trim().toLowerCase() === "q") q = Number(v?.trim())
    }
    const accepted = q > 0
    if (name === "*") star = accepted
    else return accepted
  }
  return star ?? false
}

/** How many chunks (blocks of about 64 KiB of page) {@link writeAll} writes, or compresses, at a time. */
const WriteBatch = 16

/**
 * Writes `count` chunks (`chunk(i)` makes the i-th, maybe compressing it) to `response` and ends it:
 * corked batches of {@link WriteBatch} chunks (one `writev` each instead of a write per chunk); after a
 * batch that fills the socket's buffer the next waits for `drain` (backpressure), otherwise for the next
 * turn of the event loop, so that compressing a changed page does not hold the loop for all of it.
 * Stops if the response is destroyed (the client went away).
 */
const writeAll = (response: ServerResponse, count: number, chunk: (i: number) => Buffer): void => {
  let i = 0
  const next = (): void => {
    if (response.destroyed) return
    let full = false
    response.cork()
    try {
      for (const end = Math.min(count, i + WriteBatch); i < end;) full = !response.write(chunk(i++))
    } catch (e) {
      // (a chunk that could not be made): never a truncated page that looks complete
      response.destroy(e instanceof Error ? e : new Error(String(e)))
      return
    } finally {
      response.uncork()
    }
    if (i >= count) response.end()
    else if (full) response.once("drain", next)
    else setImmediate(next)
  }
  next()
}

const make = (input: PrometheusMetricsConfigInput) =>
  Effect.gen(function*() {
    const config = yield* Schema.decodeUnknownEffect(PrometheusMetricsConfig)(input).pipe(
      Effect.mapError((e) => new PrometheusMetricsError({ reason: "config", message: e.message }))
    )
    const exporter = new PrometheusExporter({
      preventServerStart: true,
      prefix: config.prefix,
      withoutScopeInfo: config.withoutScopeInfo
    })
    const exportOptions: MetricExport.ExportOptions = { prometheusNames: true }
    const resourceLayer = Resource.layer({ serviceName: config.serviceName, serviceVersion: config.serviceVersion })
    yield* MetricExport.register([exporter], exportOptions).pipe(Effect.provide(resourceLayer))
    const resource = yield* Effect.provide(Effect.service(Resource.Resource), resourceLayer)
    const context = yield* Effect.context<never>()
    const otelSerializer = new PrometheusSerializer(config.prefix, false, undefined, false, config.withoutScopeInfo)
    const keelSerializer = new PrometheusText.Serializer({ prefix: config.prefix, withoutScopeInfo: config.withoutScopeInfo })
    // Keel's serializer reads the registry itself and keeps the page between scrapes (see
    // RegistryExposition); the exporter's collect is the way for what it does not write (a Summary)
    const registryExposition = config.serializer === "keel"
      ? new RegistryExposition(context, {
        prefix: config.prefix,
        withoutScopeInfo: config.withoutScopeInfo,
        resourceAttributes: resource.attributes,
        units: exportOptions.units,
        prometheusNames: exportOptions.prometheusNames
      })
      : undefined
    /** This scrape's page. */
    const page = async (): Promise<Page> => {
      const direct = registryExposition?.collect()
      if (direct !== undefined) return direct
      const { resourceMetrics } = await exporter.collect()
      return config.serializer === "keel"
        ? Page.fromBuffers(keelSerializer.buffers(resourceMetrics))
        : Page.fromBuffers([Buffer.from(otelSerializer.serialize(resourceMetrics), "utf8")])
    }
    const handler = (request: IncomingMessage, response: ServerResponse): void => {
      page().then(
        (page) => {
          const gzip = config.gzip && acceptsGzip(request.headers["accept-encoding"])
          response.statusCode = 200
          response.setHeader("content-type", "text/plain; version=0.0.4; charset=utf-8")
          if (config.gzip) response.setHeader("vary", "Accept-Encoding")
          if (gzip) response.setHeader("content-encoding", "gzip")
          if (request.method === "HEAD") {
            response.end()
            return
          }
          if (gzip && !page.gzipReady(config.gzipLevel)) {
            // blocks to compress: compressed batch by batch as they are written (chunked)
            writeAll(response, page.blocks.length, (i) => page.gzipMember(i, config.gzipLevel))
            return
          }
          // the whole body is known: a Content-Length, so a client that loses the connection mid-page
          // cannot take a truncated page for a complete one (a chunked page lacks its last chunk)
          const body = gzip ? page.gzip(config.gzipLevel) : page.buffers()
          let length = 0
          for (const b of body) length += b.length
          response.setHeader("content-length", length)
          writeAll(response, body.length, (i) => body[i]!)
        },
        (e) => {
          response.statusCode = 500
          response.end(`# failed to export metrics: ${e instanceof Error ? e.message : String(e)}\n`)
        }
      )
    }

    let host = config.host
    let port = config.port
    if (config.serve) {
      const server = createServer((request, response) => {
        const path = (request.url ?? "/").split("?")[0]
        if (path === config.path && (request.method === "GET" || request.method === "HEAD")) {
          handler(request, response)
        } else {
          response.statusCode = 404
          response.end("Not found\n")
        }
      })
      const address = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => listen(server, config.port, config.host),
          catch: (e) =>
            new PrometheusMetricsError({
              reason: "listen",
              message: `could not listen on ${config.host}:${config.port}: ${e instanceof Error ? e.message : String(e)}`
            })
        }),
        () => Effect.promise(() => close(server))
      )
      host = address.address
      port = address.port
    }
    const urlHost = host.includes(":") ? `[${host}]` : host
    const service: PrometheusMetricsShape = {
      config,
      host,
      port,
      url: `http://${urlHost}:${port}${config.path}`,
      handler,
      scrape: Effect.promise(() => page().then((p) => p.text())),
      snapshot: Effect.sync(() => fromMetrics(Metric.snapshotUnsafe(context)))
    }
    return { service, recorder: new McpMetrics.Recorder(config.labelCap) }
  })
