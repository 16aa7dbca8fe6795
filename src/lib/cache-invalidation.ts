import type { Redis } from "ioredis";

/**
 * Invalidation on write. Deletes the keys from Redis and publishes them on a
 * channel that every process's in-memory cache tier listens to, so no process
 * keeps serving a value a job has just changed.
 */
export function cacheKeyPrefix(prefix: string): string {
  return `${prefix}:cache:`;
}

export function invalidationChannel(prefix: string): string {
  return `${prefix}:cache:invalidate`;
}

export async function invalidateCacheKeys(redis: Redis, prefix: string, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  const unique = [...new Set(keys)];
  const pipeline = redis.pipeline();
  pipeline.del(...unique.map((key) => cacheKeyPrefix(prefix) + key));
  pipeline.publish(invalidationChannel(prefix), JSON.stringify(unique));
  await pipeline.exec();
}
