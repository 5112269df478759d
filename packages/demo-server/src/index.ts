/**
 * `@keel/demo-server`: the embedded MCP server Keel's examples, tests and benchmarks use by default.
 *
 * @since 0.1.0
 */
export { builtinTools, createDemoServer, DemoState, type DemoStats, INTERNAL_ERROR, INVALID_PARAMS } from "./DemoServer.ts"
export { type DemoHttpServer, serveHttp } from "./http.ts"
export { type DemoFlags, type DemoHttpChild, demoServerArgs, demoServerEntry, demoStdio, isAlive, spawnDemoHttp } from "./launch.ts"
export { type DemoServerOptions, parseOptions } from "./options.ts"
export { LegacySseTransport, legacySseRoutes } from "./sse.ts"
