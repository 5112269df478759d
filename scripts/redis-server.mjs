// Makes sure Debian's `redis-server` (Redis 7) is installed before the tests that start one (the scale-out
// tests and examples/10 run real Redis servers, never a mock). Used by `.ci/run` and `scripts/test.mjs`.
//
// - Present (`redis-server --version` runs): nothing to do.
// - Missing, running as root with apt-get: `apt-get update && apt-get install -y redis-server`.
// - Missing otherwise: a message saying why it cannot be installed here and how to install it; the tests
//   that need Redis then fail with the same advice (they never skip silently).
//
//   node scripts/redis-server.mjs      exit 0 when redis-server is there at the end, 1 when not
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const has = (cmd, args) => spawnSync(cmd, args, { stdio: "ignore" }).status === 0

export const redisServerInstalled = () =>
  has("redis-server", ["--version"]) || has("/usr/bin/redis-server", ["--version"])

export const ensureRedisServer = () => {
  if (redisServerInstalled()) return true
  const root = typeof process.getuid === "function" && process.getuid() === 0
  if (!root || !has("apt-get", ["--version"])) {
    console.error(
      `[redis] redis-server is not installed and cannot be installed here (${root ? "no apt-get" : "not root"}).` +
        " Install it with: sudo apt-get update && sudo apt-get install -y redis-server" +
        " — the scale-out tests and examples/10 need it and will fail without it."
    )
    return false
  }
  console.error("[redis] redis-server is missing: apt-get update && apt-get install -y redis-server")
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
  const update = spawnSync("apt-get", ["update"], { stdio: "inherit", env })
  const install = update.status === 0
    ? spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "redis-server"], { stdio: "inherit", env })
    : update
  if (install.status !== 0 || !redisServerInstalled()) {
    console.error("[redis] installing redis-server failed; the scale-out tests and examples/10 will fail")
    return false
  }
  return true
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(ensureRedisServer() ? 0 : 1)
