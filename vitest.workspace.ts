/**
 * The one list of Keel's test projects. `vitest.config.ts` imports it (vitest 5 no longer reads this file
 * by itself). Each project runs the `*.test.ts` files that sit beside the code they pin.
 */
import type { TestProjectInlineConfiguration } from "vitest/config"

const project = (name: string, root: string, extra: Partial<TestProjectInlineConfiguration["test"]> = {}) =>
  ({
    test: {
      name,
      root,
      include: ["src/**/*.test.ts", "test/**/*.test.ts", "*.test.ts"],
      ...extra
    }
  }) satisfies TestProjectInlineConfiguration

export const projects: Array<TestProjectInlineConfiguration> = [
  project("core", "packages/core"),
  project("demo-server", "packages/demo-server"),
  project("prometheus", "packages/prometheus"),
  project("examples", "examples"),
  project("workspace", "scripts")
]
