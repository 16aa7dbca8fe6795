import { z } from "zod";
import { defineContract } from "../../queues/contract.js";

export const prefetchKinds = ["escrowBalances", "activeUsers", "globalCounts"] as const;
export type PrefetchKind = (typeof prefetchKinds)[number];

export interface CachePrefetchResult {
  /**
   * "redis": the hot set was stored in the cache's shared tier. "none": there
   * is no shared tier (no REDIS_URL), so nothing was stored; the hot rows were
   * read through their primary keys instead, as the cache's loaders read them,
   * which puts their pages in PostgreSQL's buffer cache.
   */
  sharedTier: "redis" | "none";
  /** Entries stored in the shared tier per kind (0 without one). */
  warmed: Record<PrefetchKind, number>;
  /** Entries left out because a write invalidated them while the prefetch ran. */
  skipped: Record<PrefetchKind, number>;
  /** Rows of the hot set read per kind (warmed + skipped with a shared tier). */
  read: Record<PrefetchKind, number>;
  durationMs: number;
}

export const cachePrefetchPayload = z
  .object({
    /** What to warm. @defaultValue all kinds */
    kinds: z
      .array(z.enum(prefetchKinds, { error: `must be one of ${prefetchKinds.join(", ")}` }))
      .min(1, { error: "give at least one kind, or leave kinds out for all" })
      .default([...prefetchKinds]),
    /** Entries per kind at most. @defaultValue 10000 */
    limit: z.number({ error: "must be a whole number from 1 to 100000" }).int().min(1).max(100_000).default(10_000),
  })
  .strict();

export type CachePrefetchPayload = z.output<typeof cachePrefetchPayload>;

// What fails a run is PostgreSQL or Redis dropping it, and a run is safe to repeat (each value is
// stored only if not invalidated since the run read it): 5 attempts, backoff 1, 2, 4, 8 s, outlast a failover.
export const cachePrefetchContract = defineContract<CachePrefetchResult>()({
  name: "cache-prefetch",
  payload: cachePrefetchPayload,
  worker: { concurrency: 1 },
  jobOptions: { attempts: 5 },
});
