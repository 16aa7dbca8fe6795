/**
 * The two-tier cache (`dbjobs/cache`): an in-process LRU in front of Redis,
 * with invalidation that reaches every process. Producers and jobs share it.
 */

export { type CacheKind, type CacheOptions, createCache, readCacheStats, TwoTierCache } from "./cache.js";
export { invalidateCacheKeys } from "./cache-invalidation.js";
export { cacheKeys } from "./cache-keys.js";
