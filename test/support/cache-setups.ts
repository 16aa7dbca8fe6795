import type { Config } from "../../src/lib/config.js";
import { clusterNodesText } from "./spawn-cli.js";
import { testConfig, testQueueBackend } from "./test-env.js";

export { cacheOptionsFrom } from "./cache-options.js";

/**
 * The cache setups a cache test runs under. Redis as the shared tier always
 * (REDIS_URL set, on either queue backend); on the PostgreSQL queue backend
 * also no Redis at all: memory only, invalidation by LISTEN/NOTIFY. On the
 * Redis queue backend REDIS_URL is always set, so that setup cannot occur.
 */
export interface CacheSetup {
  name: string;
  withRedis: boolean;
}

export function cacheSetups(): CacheSetup[] {
  const withRedis = { name: `Redis tier, queues on ${testQueueBackend()}`, withRedis: true };
  return testQueueBackend() === "postgres" ? [withRedis, { name: "no Redis, queues on postgres", withRedis: false }] : [withRedis];
}

/** testConfig for a setup; without Redis, REDIS_URL is unset (loadConfig drops empty values). */
export function cacheTestConfig(databaseUrl: string, setup: CacheSetup, overrides: Record<string, string> = {}): Config {
  return testConfig(databaseUrl, { ...(setup.withRedis ? {} : { REDIS_URL: "" }), ...overrides });
}

/** The environment of a child process of this setup: REDIS_URL and REDIS_CLUSTER_NODES are blanked, so an inherited one cannot leak in. */
export function cacheChildEnv(config: Config, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: config.DATABASE_URL,
    DIRECT_DATABASE_URL: config.DIRECT_DATABASE_URL ?? "",
    REDIS_URL: config.REDIS_URL ?? "",
    REDIS_CLUSTER_NODES: config.REDIS_CLUSTER_NODES ? clusterNodesText(config.REDIS_CLUSTER_NODES) : "",
    QUEUE_BACKEND: config.QUEUE_BACKEND,
    QUEUE_PREFIX: config.QUEUE_PREFIX,
    LOG_LEVEL: "warn",
    ...extra,
  };
}
