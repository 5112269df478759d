/**
 * Test support: the series a PromQL expression reads. A small lexer, enough for dashboard queries:
 * metric names (an identifier that is not a function, aggregation, keyword or grouping label) and the
 * label names each selector matches on.
 *
 * @since 0.1.0
 */

/**
 * A vector selector: a metric name and the label names of its matchers.
 *
 * @since 0.1.0
 */
export interface Selector {
  readonly metric: string
  readonly labels: ReadonlyArray<string>
}

const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"])

type Token =
  | { readonly kind: "ident"; readonly text: string }
  | { readonly kind: "punct"; readonly text: string }
  | { readonly kind: "string"; readonly text: string }
  | { readonly kind: "other"; readonly text: string }

const tokenize = (expr: string): Array<Token> => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < expr.length) {
    const ch = expr[i]!
    if (/\s/.test(ch)) {
      i++
    } else if (ch === "\"" || ch === "'" || ch === "`") {
      let j = i + 1
      while (j < expr.length && expr[j] !== ch) j += expr[j] === "\\" ? 2 : 1
      tokens.push({ kind: "string", text: expr.slice(i + 1, j) })
      i = j + 1
    } else if (ch === "[") {
      // a range or subquery duration, e.g. [5m] or [$__rate_interval]
      const j = expr.indexOf("]", i)
      i = j < 0 ? expr.length : j + 1
    } else if (/[A-Za-z_:]/.test(ch)) {
      let j = i + 1
      while (j < expr.length && /[A-Za-z0-9_:]/.test(expr[j]!)) j++
      tokens.push({ kind: "ident", text: expr.slice(i, j) })
      i = j
    } else if (ch === "$") {
      let j = i + 1
      while (j < expr.length && /[A-Za-z0-9_{}]/.test(expr[j]!)) j++
      tokens.push({ kind: "other", text: expr.slice(i, j) })
      i = j
    } else if (/[0-9.]/.test(ch)) {
      let j = i + 1
      while (j < expr.length && /[0-9.eE]/.test(expr[j]!)) j++
      tokens.push({ kind: "other", text: expr.slice(i, j) })
      i = j
    } else {
      tokens.push({ kind: "punct", text: ch })
      i++
    }
  }
  return tokens
}

/**
 * The vector selectors of a PromQL expression.
 *
 * @since 0.1.0
 */
export const selectors = (expr: string): Array<Selector> => {
  const tokens = tokenize(expr)
  const out: Array<Selector> = []
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    if (t.kind !== "ident") continue
    const next = tokens[i + 1]
    const lower = t.text.toLowerCase()
    if (KEYWORDS.has(lower)) {
      // by (...), on (...), ...: skip the grouping labels
      if (next?.text === "(") {
        while (i < tokens.length && tokens[i]!.text !== ")") i++
      }
      continue
    }
    if (next?.text === "(") continue // a function or aggregation
    if (next?.kind === "ident" && (next.text === "by" || next.text === "without")) continue // sum by (...) (...)
    const labels: Array<string> = []
    if (next?.text === "{") {
      let j = i + 2
      while (j < tokens.length && tokens[j]!.text !== "}") {
        const tok = tokens[j]!
        const after = tokens[j + 1]
        if (tok.kind === "ident" && (after?.text === "=" || after?.text === "!")) labels.push(tok.text)
        j++
      }
      i = j
    }
    out.push({ metric: t.text, labels })
  }
  return out
}

/**
 * The metric named in a Grafana `label_values(metric, label)` variable query, with the label.
 *
 * @since 0.1.0
 */
export const labelValuesQuery = (query: string): Selector | undefined => {
  const m = /^\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/.exec(query)
  return m === null ? undefined : { metric: m[1]!, labels: [m[2]!] }
}
