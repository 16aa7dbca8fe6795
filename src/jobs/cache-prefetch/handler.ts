import { cacheKeys } from "../../cache/cache-keys.js";
import { readSequence, storeSerializedIfNotInvalidated } from "../../cache/cache-redis-tier.js";
import { serializeCacheValue } from "../../cache/cache-serializer.js";
import type { Config } from "../../lib/config.js";
import type { Db } from "../../lib/db.js";
import type { JobHandler } from "../../queues/job-context.js";
import { loadGlobalCounts, type SerializedEntry, streamActiveEscrowBalances, streamRecentlyActiveUsers } from "./cache-entities.js";
import type { cachePrefetchContract, PrefetchKind } from "./contract.js";

/**
 * cache-prefetch: warms the Redis tier of the cache with the hot set (seed
 * 002 "prefetch strategies"): balances of active escrow accounts, recently
 * active users, global counts. Per kind: one set-based read, then pipelined
 * multi-key writes, never a query per key.
 *
 * Safe while writes happen: the invalidation sequence is read before the
 * database, and each value is stored only if its key was not invalidated
 * since (a compare-and-set in Lua), so a write that commits during the
 * prefetch is never overwritten by the older value read here.
 */
export const handleCachePrefetch: JobHandler<typeof cachePrefetchContract> = async (payload, { db, redis, prefix, config, log, reportProgress }) => {
  const started = performance.now();
  const kinds = [...new Set(payload.kinds)];
  const warmed = { escrowBalances: 0, activeUsers: 0, globalCounts: 0 };
  const skipped = { escrowBalances: 0, activeUsers: 0, globalCounts: 0 };

  for (const [index, kind] of kinds.entries()) {
    // Before the read: any invalidation after this point beats what we read.
    const sequence = await readSequence(redis, prefix);
    let read = 0;
    let stored = 0;
    await readKind(kind, db, payload.limit, async (entries) => {
      read += entries.length;
      stored += await storeSerializedIfNotInvalidated(redis, prefix, entries, sequence, ttlOf(kind, config));
    });
    warmed[kind] = stored;
    skipped[kind] = read - stored;
    log.debug({ kind, read, stored }, "cache kind warmed");
    await reportProgress({ kindsDone: index + 1, kinds: kinds.length, warmed });
  }

  const result = { warmed, skipped, durationMs: Math.round(performance.now() - started) };
  log.info(result, "cache prefetched");
  return result;
};

/** Rows fetched per chunk; each chunk's Redis writes overlap the next chunk's fetch. */
const chunkSize = 1000;

function readKind(kind: PrefetchKind, db: Db, limit: number, onChunk: (entries: SerializedEntry[]) => Promise<void>): Promise<void> {
  if (kind === "escrowBalances") return streamActiveEscrowBalances(db, limit, chunkSize, onChunk);
  if (kind === "activeUsers") return streamRecentlyActiveUsers(db, limit, chunkSize, onChunk);
  return loadGlobalCounts(db).then((counts) => onChunk([{ key: cacheKeys.globalCounts(), text: serializeCacheValue(counts) }]));
}

function ttlOf(kind: PrefetchKind, config: Config): number {
  if (kind === "escrowBalances") return config.CACHE_TTL_BALANCE_MS;
  if (kind === "activeUsers") return config.CACHE_TTL_REFERENCE_MS;
  return config.CACHE_TTL_AGGREGATE_MS;
}
