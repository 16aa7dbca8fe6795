import type { Redis } from "ioredis";
import { EPOCH_TTL_MS, epochKey, invalidateScript, runScript, sequenceKey, valueKey } from "./cache-scripts.js";

/**
 * Invalidation on write. Deletes the keys from Redis, stamps each with a new
 * invalidation epoch (so a reader or prefetch that read the database before
 * this write cannot store its older value afterwards; see cache-scripts.ts),
 * and publishes the keys on a channel that every process's in-memory tier
 * listens to, so no process keeps serving a value a job has just changed.
 *
 * Call it after the write has committed.
 */
export function cacheKeyPrefix(prefix: string): string {
  return `${prefix}:cache:`;
}

export function invalidationChannel(prefix: string): string {
  return `${prefix}:cache:invalidate`;
}

/** Keys per script call: bounds the time one call holds Redis. */
const keysPerCall = 1000;

export async function invalidateCacheKeys(redis: Redis, prefix: string, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  const unique = [...new Set(keys)];
  for (let start = 0; start < unique.length; start += keysPerCall) {
    const chunk = unique.slice(start, start + keysPerCall);
    const redisKeys = [sequenceKey(prefix), ...chunk.flatMap((key) => [valueKey(prefix, key), epochKey(prefix, key)])];
    await runScript(redis, invalidateScript, redisKeys, [invalidationChannel(prefix), JSON.stringify(chunk), EPOCH_TTL_MS]);
  }
}
