import { type Config, redisTarget } from "../lib/config.js";
import type { Db } from "../lib/db.js";
import type { Logger } from "../lib/logger.js";
import { createRedis, type RedisConnection, redisKeyPrefix } from "../lib/redis.js";
import { invalidateCacheKeys } from "./cache-invalidation.js";

/**
 * The cache as a worker's jobs see it. The shared tier is Redis when
 * REDIS_URL (or REDIS_CLUSTER_NODES) is set, whatever QUEUE_BACKEND is (the queue store's connection
 * when the queues live in Redis, else one of its own), and there is none
 * without it.
 *
 * Invalidation removes keys from the shared tier and from every process's
 * in-memory tier: through Redis when there is a shared tier, else through
 * PostgreSQL NOTIFY on `cacheNotifyChannel`, which every cache LISTENs to.
 */
export interface SharedCacheTier {
  /** Redis, the only shared tier (see docs/cache.md for why not PostgreSQL). */
  redis: RedisConnection;
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

export function createCacheInvalidator(options: {
  config: Config;
  prefix: string;
  redis: RedisConnection | undefined;
  db: Db;
  logger: Logger;
}): CacheInvalidator {
  const { config } = options;
  const target = redisTarget(config);
  const ownsRedis = !options.redis && Boolean(target);
  const redis = options.redis ?? (target ? createRedis(target, "worker", options.logger) : undefined);
  if (redis) {
    const prefix = redisKeyPrefix(redis, options.prefix);
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
    invalidate: (keys) => invalidateCacheKeys(options.db.pool, options.prefix, keys),
    sharedTier: undefined,
    async close() {},
  };
}
