/**
 * The two-tier cache (`dbjobs/cache`): an in-process LRU in front of Redis
 * when REDIS_URL is set, with invalidation that reaches every process (through
 * Redis, or PostgreSQL LISTEN/NOTIFY without it). Producers and jobs share it.
 */

export { type CacheKind, type CacheOptions, type CacheStats, createCache, type GetOrLoadOptions, readCacheStats, TwoTierCache } from "./cache.js";
export { type CacheInvalidationTarget, cacheNotifyChannel, invalidateCacheKeys } from "./cache-invalidation.js";
export { cacheKeys } from "./cache-keys.js";
