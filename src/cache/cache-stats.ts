import type { Redis } from "ioredis";
import { incrementCounter, readMetrics } from "../lib/metrics.js";

/**
 * Hit, miss and load counts per tier and kind of data. Each cache keeps its
 * own figures (`cache.stats()`) and also counts them into the process's
 * metrics, which are flushed to Redis so the dashboard's /metrics and
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

export const cacheMetricNames = {
  hits: "dbjobs_cache_hits_total",
  misses: "dbjobs_cache_misses_total",
  loads: "dbjobs_cache_loads_total",
} as const;

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
    incrementCounter(cacheMetricNames.hits, { tier, kind });
  }

  miss(kind: CacheKind): void {
    this.byKind[kind].misses++;
    incrementCounter(cacheMetricNames.misses, { kind });
  }

  load(kind: CacheKind): void {
    this.byKind[kind].loads++;
    incrementCounter(cacheMetricNames.loads, { kind });
  }

  snapshot(): CacheStatsSnapshot {
    return snapshot(this.byKind);
  }
}

const seriesPattern = /^(dbjobs_cache_(?:hits|misses|loads)_total)\{(.*)\}$/;

function parseLabels(body: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const match of body.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[match[1] as string] = match[2] as string;
  return labels;
}

/**
 * The cache figures of every process, summed, from the metrics hash in Redis
 * (as flushed by each cache and worker). For `dbjobs status --json`.
 */
export async function readCacheStats(redis: Redis, prefix: string): Promise<CacheStatsSnapshot> {
  const byKind = Object.fromEntries(cacheKinds.map((kind) => [kind, emptyCounts()])) as Record<CacheKind, Counts>;
  for (const [series, value] of await readMetrics(redis, prefix)) {
    const match = seriesPattern.exec(series);
    if (!match) continue;
    const labels = parseLabels(match[2] as string);
    const counts = byKind[labels.kind as CacheKind];
    if (!counts) continue;
    if (match[1] === cacheMetricNames.hits) {
      if (labels.tier === "l1") counts.l1Hits += value;
      else if (labels.tier === "l2") counts.l2Hits += value;
    } else if (match[1] === cacheMetricNames.misses) counts.misses += value;
    else counts.loads += value;
  }
  return snapshot(byKind);
}
