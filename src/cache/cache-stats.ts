import { type MetricsStore, metricDeclarations, metrics } from "../lib/metrics.js";

/**
 * Hit, miss and load counts per tier and kind of data. Each cache keeps its
 * own figures (`cache.stats()`) and also counts them into the process's
 * metrics, which are flushed to the metrics store so the dashboard's /metrics and
 * `dbjobs status --json` see the sum over every process (`readCacheStats`).
 *
 * - an L1 hit: answered from the process's memory;
 * - an L2 hit: missed memory, answered from Redis;
 * - a miss: missed both tiers (so L1 misses = L2 hits + misses);
 * - a load: one run of the loader; concurrent misses on one key share one load.
 */
export const cacheKinds = ["reference", "balance", "aggregate"] as const;

/** The kind of data decides the TTL: reference data 5 min, hot balances 10 s, aggregates 60 s by default. */
export type CacheKind = (typeof cacheKinds)[number];

export interface CacheKindStats {
  l1Hits: number;
  l2Hits: number;
  misses: number;
  loads: number;
  /** (l1Hits + l2Hits) / requests, 0 when there were none. */
  hitRate: number;
}

export interface CacheStatsSnapshot {
  kinds: Record<CacheKind, CacheKindStats>;
  total: CacheKindStats;
}

type Counts = Omit<CacheKindStats, "hitRate">;

const emptyCounts = (): Counts => ({ l1Hits: 0, l2Hits: 0, misses: 0, loads: 0 });

function withHitRate(counts: Counts): CacheKindStats {
  const requests = counts.l1Hits + counts.l2Hits + counts.misses;
  return { ...counts, hitRate: requests === 0 ? 0 : (counts.l1Hits + counts.l2Hits) / requests };
}

function snapshot(byKind: Record<CacheKind, Counts>): CacheStatsSnapshot {
  const total = emptyCounts();
  for (const kind of cacheKinds) {
    for (const field of Object.keys(total) as (keyof Counts)[]) total[field] += byKind[kind][field];
  }
  return {
    kinds: Object.fromEntries(cacheKinds.map((kind) => [kind, withHitRate(byKind[kind])])) as Record<CacheKind, CacheKindStats>,
    total: withHitRate(total),
  };
}

/** One cache's counters; every count also goes to the metrics registry. */
export class CacheCounters {
  private readonly byKind = Object.fromEntries(cacheKinds.map((kind) => [kind, emptyCounts()])) as Record<CacheKind, Counts>;

  hit(tier: "l1" | "l2", kind: CacheKind): void {
    if (tier === "l1") this.byKind[kind].l1Hits++;
    else this.byKind[kind].l2Hits++;
    metrics.cacheHits.inc({ tier, kind });
  }

  miss(kind: CacheKind): void {
    this.byKind[kind].misses++;
    metrics.cacheMisses.inc({ kind });
  }

  load(kind: CacheKind): void {
    this.byKind[kind].loads++;
    metrics.cacheLoads.inc({ kind });
  }

  snapshot(): CacheStatsSnapshot {
    return snapshot(this.byKind);
  }
}

/**
 * The cache figures of every process, summed, from the metrics store (as
 * flushed by each cache and worker). For `dbjobs status --json`.
 */
export async function readCacheStats(store: MetricsStore): Promise<CacheStatsSnapshot> {
  const byKind = Object.fromEntries(cacheKinds.map((kind) => [kind, emptyCounts()])) as Record<CacheKind, Counts>;
  const { cacheHits, cacheMisses, cacheLoads } = metricDeclarations;
  for (const { metric, labels, value } of (await store.read()).samples) {
    const counts = byKind[labels.kind as CacheKind];
    if (!counts) continue;
    if (metric === cacheHits.name) {
      if (labels.tier === "l1") counts.l1Hits += value;
      else if (labels.tier === "l2") counts.l2Hits += value;
    } else if (metric === cacheMisses.name) counts.misses += value;
    else if (metric === cacheLoads.name) counts.loads += value;
  }
  return snapshot(byKind);
}
