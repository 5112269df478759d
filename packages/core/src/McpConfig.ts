/**
 * `McpConfig`: the decoded Keel config (servers, pool defaults, cache config, the `keel.defaults` sections)
 * as a service, so every part of the default graph reads the same value: the `ToolCache` its `cache`
 * section, the `ConnectionPool` its `pool` section, and `McpClientManager` its servers.
 *
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { McpClientManager, McpConfig } from "@keel/core"
 *
 * // the one-Layer way: McpClientManager.layerFile("mcp.json")
 * // the same graph, by hand:
 * const live = McpClientManager.layerDefault().pipe(Layer.provide(McpConfig.layerFile("mcp.json")))
 * ```
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import type { McpConfigError } from "./ConfigSchema.ts"
import * as ConnectionPool from "./ConnectionPool.ts"
import { decodeConfig, loadConfigFile, type McpConfigShape } from "./McpConfigFile.ts"
import * as ToolCache from "./ToolCache.ts"

/**
 * The decoded config service.
 *
 * - `McpConfig.layer(config)` provides a config decoded already;
 * - `McpConfig.layerConfig(json)` decodes an `mcpServers` value (`${VAR}` from the environment);
 * - `McpConfig.layerFile(path)` reads and decodes a file; errors name the file and the path in it.
 *
 * @since 0.2.0
 * @category services
 */
export class McpConfig extends Context.Service<McpConfig, McpConfigShape>()("@keel/core/McpConfig") {
  /** A layer holding a decoded config. */
  static readonly layer = (config: McpConfigShape): Layer.Layer<McpConfig> => Layer.succeed(McpConfig, config)

  /** A layer from an `mcpServers` config value (parsed JSON); `env` is where `${VAR}` comes from. */
  static readonly layerConfig = (
    json: unknown,
    env: Record<string, string | undefined> = process.env
  ): Layer.Layer<McpConfig, McpConfigError> => Layer.effect(McpConfig, decodeConfig(json, env))

  /** A layer from an `mcpServers` config file. */
  static readonly layerFile = (
    file: string,
    env: Record<string, string | undefined> = process.env
  ): Layer.Layer<McpConfig, McpConfigError> => Layer.effect(McpConfig, loadConfigFile(file, env))

  /** An empty config: no servers, every default (for managers whose servers all join at run time). */
  static readonly empty: Layer.Layer<McpConfig> = Layer.sync(McpConfig, () => ({
    servers: [],
    pool: ConnectionPool.defaultConfig,
    cache: ToolCache.defaultConfig,
    defaults: {}
  }))
}
