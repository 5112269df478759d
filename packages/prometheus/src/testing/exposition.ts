/**
 * Test support: reading a Prometheus exposition with `parse-prometheus-text-format` (a real parser of the
 * text format, ported from the Prometheus Python client), and looking samples up by name and labels.
 *
 * The parser folds a *labelled* histogram family into one object and drops its labels (it was written
 * for unlabelled ones). So {@link parseExposition} parses the text twice: once as is, for the families
 * and their types, and once with histogram `# TYPE` lines marked `untyped`, so that every `_bucket`,
 * `_count` and `_sum` line comes back as its own sample with its labels. Sample values, label escaping
 * and family boundaries are still the parser's.
 *
 * @since 0.1.0
 */
import parsePrometheusTextFormat, { type Family } from "parse-prometheus-text-format"

/**
 * One sample line: its name (with `_bucket`/`_count`/`_sum`/`_total` as written), labels and value.
 *
 * @since 0.1.0
 */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/**
 * A parsed exposition.
 *
 * @since 0.1.0
 */
export interface Exposition {
  readonly families: ReadonlyArray<Family>
  readonly samples: ReadonlyArray<Sample>
  /** Family name → type (`COUNTER`, `GAUGE`, `HISTOGRAM`, ...). */
  readonly types: ReadonlyMap<string, Family["type"]>
}

const toNumber = (v: string | undefined): number =>
  v === undefined ? Number.NaN : v === "+Inf" ? Number.POSITIVE_INFINITY : v === "-Inf" ? Number.NEGATIVE_INFINITY : Number(v)

/**
 * Parses an exposition (see the module doc for how histograms are handled).
 *
 * @since 0.1.0
 */
export const parseExposition = (text: string): Exposition => {
  const families = parsePrometheusTextFormat(text)
  const flat = parsePrometheusTextFormat(text.replace(/^# TYPE (\S+) histogram$/gm, "# TYPE $1 untyped"))
  const samples: Array<Sample> = []
  for (const family of flat) {
    for (const m of family.metrics) {
      if (m.value !== undefined) samples.push({ name: family.name, labels: m.labels ?? {}, value: toNumber(m.value) })
    }
  }
  return { families, samples, types: new Map(families.map((f) => [f.name, f.type])) }
}

/**
 * The samples named `name` whose labels include `labels` (a label given as `undefined` must be absent).
 *
 * @since 0.1.0
 */
export const select = (
  exposition: Exposition,
  name: string,
  labels: Readonly<Record<string, string | undefined>> = {}
): ReadonlyArray<Sample> =>
  exposition.samples.filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => (v === undefined ? !(k in s.labels) : s.labels[k] === v))
  )

/**
 * The sum of the matching samples' values (0 when none match).
 *
 * @since 0.1.0
 */
export const total = (
  exposition: Exposition,
  name: string,
  labels: Readonly<Record<string, string | undefined>> = {}
): number => select(exposition, name, labels).reduce((n, s) => n + s.value, 0)

/**
 * Fetches `url` over HTTP and returns the status and body.
 *
 * @since 0.1.0
 */
export const fetchText = async (url: string): Promise<{ readonly status: number; readonly text: string; readonly contentType: string | null }> => {
  const response = await fetch(url)
  return { status: response.status, text: await response.text(), contentType: response.headers.get("content-type") }
}
