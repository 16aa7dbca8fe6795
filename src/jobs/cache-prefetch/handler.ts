import type { Redis } from "ioredis";
import { z } from "zod";
import { cacheKeys } from "../../cache/cache-keys.js";
import { readSequence, storeSerializedIfNotInvalidated } from "../../cache/cache-redis-tier.js";
import { serializeCacheValue } from "../../cache/cache-serializer.js";
import type { Config } from "../../lib/config.js";
import type { Db } from "../../lib/db.js";
import type { Logger } from "../../lib/logger.js";
import { defineJob } from "../../queues/job-definition.js";
import { loadGlobalCounts, type SerializedEntry, streamActiveEscrowBalances, streamRecentlyActiveUsers } from "./cache-entities.js";

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
export const prefetchKinds = ["escrowBalances", "activeUsers", "globalCounts"] as const;
export type PrefetchKind = (typeof prefetchKinds)[number];

export const cachePrefetchPayload = z
  .object({
    /** What to warm. @defaultValue all kinds */
    kinds: z
      .array(z.enum(prefetchKinds, { error: `must be one of ${prefetchKinds.join(", ")}` }))
      .min(1, { error: "give at least one kind, or leave kinds out for all" })
      .optional(),
    /** Entries per kind at most. @defaultValue 10000 */
    limit: z.number({ error: "must be a whole number from 1 to 100000" }).int().min(1).max(100_000).optional(),
  })
  .strict();

export type CachePrefetchPayload = z.output<typeof cachePrefetchPayload>;

export interface CachePrefetchResult {
  /** Entries stored per kind. */
  warmed: Record<PrefetchKind, number>;
  /** Entries left out because a write invalidated them while the prefetch ran. */
  skipped: Record<PrefetchKind, number>;
  durationMs: number;
}

export interface PrefetchDeps {
  db: Db;
  redis: Redis;
  prefix: string;
  config: Pick<Config, "CACHE_TTL_REFERENCE_MS" | "CACHE_TTL_BALANCE_MS" | "CACHE_TTL_AGGREGATE_MS">;
  log: Logger;
  reportProgress?(progress: object): Promise<void>;
  /** Test seam: runs after the first chunk of a kind was read from the database and before it is written to Redis. */
  afterRead?(kind: PrefetchKind): Promise<void>;
}

/** Rows fetched per chunk; each chunk's Redis writes overlap the next chunk's fetch. */
const chunkSize = 1000;

function readKind(kind: PrefetchKind, db: Db, limit: number, onChunk: (entries: SerializedEntry[]) => Promise<void>): Promise<void> {
  if (kind === "escrowBalances") return streamActiveEscrowBalances(db, limit, chunkSize, onChunk);
  if (kind === "activeUsers") return streamRecentlyActiveUsers(db, limit, chunkSize, onChunk);
  return loadGlobalCounts(db).then((counts) => onChunk([{ key: cacheKeys.globalCounts(), text: serializeCacheValue(counts) }]));
}

function ttlOf(kind: PrefetchKind, config: PrefetchDeps["config"]): number {
  if (kind === "escrowBalances") return config.CACHE_TTL_BALANCE_MS;
  if (kind === "activeUsers") return config.CACHE_TTL_REFERENCE_MS;
  return config.CACHE_TTL_AGGREGATE_MS;
}

export async function prefetch(payload: CachePrefetchPayload, deps: PrefetchDeps): Promise<CachePrefetchResult> {
  const started = performance.now();
  const kinds = [...new Set(payload.kinds ?? prefetchKinds)];
  const limit = payload.limit ?? 10_000;
  const warmed = { escrowBalances: 0, activeUsers: 0, globalCounts: 0 };
  const skipped = { escrowBalances: 0, activeUsers: 0, globalCounts: 0 };

  for (const [index, kind] of kinds.entries()) {
    // Before the read: any invalidation after this point beats what we read.
    const sequence = await readSequence(deps.redis, deps.prefix);
    let read = 0;
    let stored = 0;
    let hookRan = false;
    await readKind(kind, deps.db, limit, async (entries) => {
      if (!hookRan) {
        hookRan = true;
        await deps.afterRead?.(kind);
      }
      read += entries.length;
      stored += await storeSerializedIfNotInvalidated(deps.redis, deps.prefix, entries, sequence, ttlOf(kind, deps.config));
    });
    warmed[kind] = stored;
    skipped[kind] = read - stored;
    deps.log.debug({ kind, read, stored }, "cache kind warmed");
    await deps.reportProgress?.({ kindsDone: index + 1, kinds: kinds.length, warmed });
  }

  const result = { warmed, skipped, durationMs: Math.round(performance.now() - started) };
  deps.log.info(result, "cache prefetched");
  return result;
}

export const cachePrefetchJob = defineJob({
  queue: "cache-prefetch",
  payloadSchema: cachePrefetchPayload,
  handle: (payload, { db, redis, prefix, config, log, reportProgress }) => prefetch(payload, { db, redis, prefix, config, log, reportProgress }),
});
