/**
 * Start-up options of the demo server, from the command line. Every option exists so a test, example or
 * benchmark can reproduce a kind of server: slow to start, broken at start, paginating, advertising many
 * tools, caching hints.
 */
import { parseArgs } from "node:util"

/** How the demo server is started. */
export interface DemoServerOptions {
  /** `stdio` (default) or `http` (Streamable HTTP on `host:port`, path `/mcp`). */
  readonly transport: "stdio" | "http"
  /** HTTP host. Default `127.0.0.1`: the demo server never listens beyond loopback unless told. */
  readonly host: string
  /** HTTP port. Default 0: any free port, printed on stdout as `KEEL_DEMO_LISTENING <url>`. */
  readonly port: number
  /** `tools/list` page size. Default 0: no paging. */
  readonly pageSize: number
  /** Extra generated tools `tool_0000…` (for cardinality and paging tests). Default 0. */
  readonly extraTools: number
  /** Sleep this long before serving (a slow server). Default 0. */
  readonly startupDelayMs: number
  /** Exit with this code before serving (a broken server), after writing a line to stderr. */
  readonly exitAtStart: number | undefined
  /** `ttlMs` hint put on `tools/list` results (spec 2026-07-28). */
  readonly listTtlMs: number | undefined
  /** `cacheScope` hint put on `tools/list` results. */
  readonly listCacheScope: "public" | "private" | undefined
  /** The server's name in `initialize`. Default `keel-demo`. */
  readonly name: string
  /**
   * `--protocol-version <v>`: pin the server to exactly this MCP revision (one of {@link DEMO_PROTOCOL_VERSIONS}).
   * Default `undefined`: the server speaks 2026-07-28 (`server/discover`, per-request `_meta`, stateless HTTP)
   * and every older revision the SDK knows (the `initialize` handshake), so each client gets the newest
   * revision both sides speak.
   */
  readonly protocolVersion: string | undefined
  /**
   * `--auth`: over HTTP, serve `/mcp` as an OAuth-protected resource, with a local authorization server on
   * 127.0.0.1 (see `auth.ts`); its issuer is printed as `KEEL_DEMO_AUTH_SERVER <url>`. Default off.
   */
  readonly auth: boolean
  /**
   * `--surface`: advertise the tools that change resources and prompts and echo trace context
   * (`bump_counter`, `set_resources`, `set_prompts`, `trace_context`; see `surface.ts`). Default off.
   * Resources, templates, prompts and completions are served either way.
   */
  readonly surface: boolean
}

/** The revisions the demo server can speak, newest first (2026-07-28 is the "modern" era). */
export const DEMO_PROTOCOL_VERSIONS: ReadonlyArray<string> = ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]

/** The revisions a server with these options answers, newest first. */
export const servedProtocolVersions = (options: Pick<DemoServerOptions, "protocolVersion">): Array<string> =>
  options.protocolVersion === undefined ? [...DEMO_PROTOCOL_VERSIONS] : [options.protocolVersion]

/** Whether a server with these options speaks the 2026-07-28 era. */
export const servesModern = (options: Pick<DemoServerOptions, "protocolVersion">): boolean =>
  servedProtocolVersions(options).some((v) => v >= "2026-07-28")

/** Parses the demo server's command line; throws with the option's name on a bad value. */
export const parseOptions = (argv: ReadonlyArray<string>): DemoServerOptions => {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      transport: { type: "string", default: "stdio" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      "page-size": { type: "string", default: "0" },
      "extra-tools": { type: "string", default: "0" },
      "startup-delay-ms": { type: "string", default: "0" },
      "exit-at-start": { type: "string" },
      "list-ttl-ms": { type: "string" },
      "list-cache-scope": { type: "string" },
      name: { type: "string", default: "keel-demo" },
      "protocol-version": { type: "string" },
      surface: { type: "boolean", default: false },
      auth: { type: "boolean", default: false }
    },
    strict: true
  })
  const int = (name: string, raw: string | undefined): number => {
    const n = Number(raw)
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${raw}`)
    return n
  }
  const transport = values.transport
  if (transport !== "stdio" && transport !== "http") {
    throw new Error(`--transport must be stdio or http, got ${transport}`)
  }
  const scope = values["list-cache-scope"]
  if (scope !== undefined && scope !== "public" && scope !== "private") {
    throw new Error(`--list-cache-scope must be public or private, got ${scope}`)
  }
  const protocolVersion = values["protocol-version"]
  if (protocolVersion !== undefined && !DEMO_PROTOCOL_VERSIONS.includes(protocolVersion)) {
    throw new Error(`--protocol-version must be one of ${DEMO_PROTOCOL_VERSIONS.join(", ")}, got ${protocolVersion}`)
  }
  return {
    transport,
    host: values.host,
    port: int("port", values.port),
    pageSize: int("page-size", values["page-size"]),
    extraTools: int("extra-tools", values["extra-tools"]),
    startupDelayMs: int("startup-delay-ms", values["startup-delay-ms"]),
    exitAtStart: values["exit-at-start"] === undefined ? undefined : int("exit-at-start", values["exit-at-start"]),
    listTtlMs: values["list-ttl-ms"] === undefined ? undefined : int("list-ttl-ms", values["list-ttl-ms"]),
    listCacheScope: scope,
    name: values.name,
    protocolVersion,
    auth: values.auth,
    surface: values.surface
  }
}
