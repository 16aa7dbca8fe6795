import type { Redis } from "ioredis";
import type { Config } from "../lib/config.js";
import type { Db } from "../lib/db.js";
import type { Logger } from "../lib/logger.js";
import { createRedis } from "../lib/redis.js";
import { invalidateCacheKeys } from "./cache-invalidation.js";

/**
 * The cache as a worker's jobs see it. The shared tier is Redis when
 * REDIS_URL is set, whatever QUEUE_BACKEND is (the queue store's connection
 * when the queues live in Redis, else one of its own), and there is none
 * without it.
 *
 * Invalidation removes keys from the shared tier and from every process's
 * in-memory tier: through Redis when there is a shared tier, else through
 * PostgreSQL NOTIFY on `cacheNotifyChannel`, which every cache LISTENs to.
 */
export interface SharedCacheTier {
  /** Redis, the only shared tier (see docs/cache.md for why not PostgreSQL). */
  redis: Redis;
  /** Key prefix: values live at `<prefix>:cache:<key>`. */
  prefix: string;
}

export interface CacheInvalidator {
  invalidate(keys: string[]): Promise<void>;
  /** Where jobs that write to the cache (cache-prefetch) write; undefined without Redis. */
  readonly sharedTier: SharedCacheTier | undefined;
  close(): Promise<void>;
}

export { cacheNotifyChannel } from "./cache-invalidation.js";

export function createCacheInvalidator(options: { config: Config; prefix: string; redis: Redis | undefined; db: Db; logger: Logger }): CacheInvalidator {
  const { config, prefix } = options;
  const ownsRedis = !options.redis && Boolean(config.REDIS_URL);
  const redis = options.redis ?? (config.REDIS_URL ? createRedis(config.REDIS_URL, "worker", options.logger) : undefined);
  if (redis) {
    return {
      invalidate: (keys) => invalidateCacheKeys(redis, prefix, keys),
      sharedTier: { redis, prefix },
      async close() {
        if (ownsRedis) redis.disconnect();
      },
    };
  }
  return {
    // Autocommit on the pool: delivered to every listener at once. Jobs call it after their write has committed.
    invalidate: (keys) => invalidateCacheKeys(options.db.pool, prefix, keys),
    sharedTier: undefined,
    async close() {},
  };
}
