import { cacheKeys } from "../../cache/cache-keys.js";
import { readSequence, storeSerializedIfNotInvalidated } from "../../cache/cache-redis-tier.js";
import { serializeCacheValue } from "../../cache/cache-serializer.js";
import type { SharedCacheTier } from "../../cache/invalidator.js";
import type { Config } from "../../lib/config.js";
import type { Db } from "../../lib/db.js";
import type { JobHandler } from "../../queues/job-context.js";
import {
  loadGlobalCounts,
  readHotEscrowBalances,
  readHotUsers,
  type SerializedEntry,
  streamActiveEscrowBalances,
  streamRecentlyActiveUsers,
} from "./cache-entities.js";
import type { cachePrefetchContract, PrefetchKind } from "./contract.js";

/**
 * cache-prefetch: warms the cache with the hot set (seed 002 "prefetch
 * strategies"): balances of active escrow accounts, recently active users,
 * global counts.
 *
 * With a shared tier (Redis): per kind, one set-based read, then pipelined
 * multi-key writes, never a query per key. Safe while writes happen: the
 * invalidation sequence is read before the database, and each value is stored
 * only if its key was not invalidated since (a compare-and-set in Lua), so a
 * write that commits during the prefetch is never overwritten by the older
 * value read here.
 *
 * Without one (no REDIS_URL) nothing can be stored where other processes
 * would find it, so it stores nothing and says so (`sharedTier: "none"`). It
 * reads the hot rows through their primary keys instead, as every process's
 * loaders will, which puts those pages in PostgreSQL's buffer cache: the one
 * cache all processes share then. Each process's memory fills from its own
 * reads, with what that process actually uses.
 */
export const handleCachePrefetch: JobHandler<typeof cachePrefetchContract> = async (payload, { db, sharedCache, config, log, reportProgress }) => {
  const started = performance.now();
  const kinds = [...new Set(payload.kinds)];
  const warmed = { escrowBalances: 0, activeUsers: 0, globalCounts: 0 };
  const skipped = { escrowBalances: 0, activeUsers: 0, globalCounts: 0 };
  const read = { escrowBalances: 0, activeUsers: 0, globalCounts: 0 };

  for (const [index, kind] of kinds.entries()) {
    if (sharedCache) {
      const counts = await warmSharedTier(sharedCache, kind, db, payload.limit, config);
      warmed[kind] = counts.stored;
      skipped[kind] = counts.read - counts.stored;
      read[kind] = counts.read;
    } else {
      read[kind] = await readThroughLoaderPath(kind, db, payload.limit);
    }
    log.debug({ kind, read: read[kind], stored: warmed[kind] }, "cache kind warmed");
    await reportProgress({ kindsDone: index + 1, kinds: kinds.length, warmed, read });
  }

  const result = {
    sharedTier: sharedCache ? ("redis" as const) : ("none" as const),
    warmed,
    skipped,
    read,
    durationMs: Math.round(performance.now() - started),
  };
  if (sharedCache) log.info(result, "cache prefetched");
  else log.info(result, "cache prefetched: no shared tier (REDIS_URL unset), so nothing stored; hot rows read into PostgreSQL's buffer cache");
  return result;
};

/** Rows fetched per chunk; each chunk's Redis writes overlap the next chunk's fetch. */
const chunkSize = 1000;

async function warmSharedTier(tier: SharedCacheTier, kind: PrefetchKind, db: Db, limit: number, config: Config): Promise<{ read: number; stored: number }> {
  // Before the read: any invalidation after this point beats what we read.
  const sequence = await readSequence(tier.redis, tier.prefix);
  let read = 0;
  let stored = 0;
  await readKind(kind, db, limit, async (entries) => {
    read += entries.length;
    stored += await storeSerializedIfNotInvalidated(tier.redis, tier.prefix, entries, sequence, ttlOf(kind, config));
  });
  return { read, stored };
}

function readKind(kind: PrefetchKind, db: Db, limit: number, onChunk: (entries: SerializedEntry[]) => Promise<void>): Promise<void> {
  if (kind === "escrowBalances") return streamActiveEscrowBalances(db, limit, chunkSize, onChunk);
  if (kind === "activeUsers") return streamRecentlyActiveUsers(db, limit, chunkSize, onChunk);
  return loadGlobalCounts(db).then((counts) => onChunk([{ key: cacheKeys.globalCounts(), text: serializeCacheValue(counts) }]));
}

async function readThroughLoaderPath(kind: PrefetchKind, db: Db, limit: number): Promise<number> {
  if (kind === "escrowBalances") return readHotEscrowBalances(db, limit);
  if (kind === "activeUsers") return readHotUsers(db, limit);
  await loadGlobalCounts(db);
  return 1;
}

function ttlOf(kind: PrefetchKind, config: Config): number {
  if (kind === "escrowBalances") return config.CACHE_TTL_BALANCE_MS;
  if (kind === "activeUsers") return config.CACHE_TTL_REFERENCE_MS;
  return config.CACHE_TTL_AGGREGATE_MS;
}
