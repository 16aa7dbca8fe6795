/**
 * dbjobs for producer applications: enqueue validated jobs from TypeScript.
 *
 *   import { Producer } from "dbjobs";
 *   const producer = new Producer({ redisUrl: process.env.REDIS_URL });
 *   await producer.enqueue("invoice-totals", { invoiceIds: [id] });
 */

export { type CacheKind, type CacheOptions, createCache, readCacheStats, TwoTierCache } from "./lib/cache.js";
export { invalidateCacheKeys } from "./lib/cache-invalidation.js";
export { cacheKeys } from "./lib/cache-keys.js";
export { type Config, loadConfig } from "./lib/config.js";
export { DbjobsError, PayloadValidationError, UnknownQueueError } from "./lib/errors.js";
export { migrate } from "./lib/migrate.js";
export { backoffDelayMs, isWriteConflict, retryOnConflict, withConflictRetry } from "./lib/retry.js";
export { Producer, type ProducerOptions } from "./queues/producer.js";
export { type PayloadInput, type QueueName, queueNames, registry } from "./queues/registry.js";
export { startWorker } from "./queues/start-worker.js";
