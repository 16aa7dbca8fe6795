import type { Job } from "bullmq";
import { Redis } from "ioredis";
import { createCache, type TwoTierCache } from "../src/cache/cache.js";
import { invalidateCacheKeys } from "../src/cache/cache-invalidation.js";
import { cacheKeys } from "../src/cache/cache-keys.js";
import { cachePrefetchPayload } from "../src/jobs/cache-prefetch/contract.js";
import { handleCachePrefetch } from "../src/jobs/cache-prefetch/handler.js";
import { loadConfig } from "../src/lib/config.js";
import { createDb, Prisma } from "../src/lib/db.js";
import { createLogger } from "../src/lib/logger.js";
import type { JobContext } from "../src/queues/job-context.js";
import { workerServices } from "../src/queues/worker-services.js";
import type { BenchRow, BenchSection } from "./bench-section.js";
import { benchPrefix, benchRedisUrl, freshBenchDatabase, timeMs } from "./support.js";

/**
 * The cache's figures (issue 6): prefetch of 10k escrow balances next to the
 * same reads and writes one key at a time; L1 and L2 hit latency (p99) next
 * to a raw Redis GET; hit rate of a Zipf-distributed read workload; how long
 * an invalidation takes to reach another cache's memory.
 */
const accounts = 10_000;

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Ranks 0..n-1 drawn with probability ∝ 1/(rank+1)^s, by inverse CDF over a precomputed table. */
function zipfSampler(n: number, s: number, seed = 42): () => number {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let rank = 0; rank < n; rank++) {
    total += 1 / (rank + 1) ** s;
    cdf[rank] = total;
  }
  let state = seed;
  const random = () => {
    // mulberry32: a seeded generator so every run draws the same workload.
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => {
    const target = random() * total;
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if ((cdf[mid] as number) < target) low = mid + 1;
      else high = mid;
    }
    return low;
  };
}

async function latencies(count: number, operation: (index: number) => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let index = 0; index < count; index++) {
    const start = performance.now();
    await operation(index);
    samples.push(performance.now() - start);
  }
  return samples;
}

export const cacheBench: BenchSection = {
  name: "cache",
  async run(): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    const url = await freshBenchDatabase("cache");
    const logger = createLogger({ level: "warn" });
    const db = createDb({ url, poolSize: 4, logger });
    const redis = new Redis(benchRedisUrl);
    const prefix = benchPrefix();
    const config = loadConfig({ DATABASE_URL: url, REDIS_URL: benchRedisUrl, QUEUE_PREFIX: prefix });
    const caches: TwoTierCache[] = [];
    const open = async (overrides: Record<string, string> = {}, onInvalidation?: (keys: string[]) => void) => {
      const cache = await createCache({ redis: benchRedisUrl, prefix, config: loadConfig({ ...overrides }), logger, onInvalidation });
      caches.push(cache);
      return cache;
    };
    try {
      await db.pool.query(
        `INSERT INTO "escrow_accounts" ("accountNumber", "currentBalance", "availableBalance")
         SELECT 'BENCH-' || g, (g % 100000) / 100.0, (g % 100000) / 100.0 FROM generate_series(1, $1) g`,
        [accounts],
      );
      await db.pool.query(`ANALYZE "escrow_accounts"`);
      const ids = (await db.pool.query<{ id: string }>(`SELECT "id"::text AS id FROM "escrow_accounts" ORDER BY "id"`)).rows.map((row) => row.id);

      // ── Prefetch vs one key at a time ──
      // The handler as a worker runs it, minus BullMQ.
      const context: JobContext = {
        job: { id: "bench" } as Job,
        log: logger,
        db,
        redis,
        config,
        prefix,
        services: workerServices(config),
        invalidateCache: (keys) => invalidateCacheKeys(redis, prefix, keys),
        reportProgress: async () => undefined,
      };
      const prefetch = (payload: { limit: number }) => handleCachePrefetch(cachePrefetchPayload.parse({ kinds: ["escrowBalances"], ...payload }), context);
      await prefetch({ limit: 100 }); // warm connections and script cache
      const prefetchRuns: number[] = [];
      for (let run = 0; run < 3; run++) prefetchRuns.push(await timeMs(() => prefetch({ limit: accounts })));
      const prefetchMs = Math.min(...prefetchRuns);
      const oneAtATimeMs = await timeMs(async () => {
        for (const id of ids) {
          const balance = await db.prisma.escrowAccount.findUnique({
            where: { id },
            select: { id: true, currentBalance: true, availableBalance: true, pendingBalance: true, heldBalance: true, version: true, updatedAt: true },
          });
          await redis.set(`${prefix}:cache:${cacheKeys.escrowBalance(id)}`, JSON.stringify(balance), "PX", config.CACHE_TTL_BALANCE_MS);
        }
      });
      rows.push({ name: `prefetch ${accounts} escrow balances (best of 3)`, value: prefetchMs, unit: "ms", goal: "< 500 ms", met: prefetchMs < 500 });
      rows.push({
        name: `prefetch vs the same ${accounts} reads and writes one key at a time`,
        value: prefetchMs,
        unit: "ms",
        baseline: oneAtATimeMs,
        ratio: oneAtATimeMs / prefetchMs,
        goal: "ratio = times faster",
      });

      // ── L1 and L2 hit latency ──
      const hot = await open();
      const load = async () => ({ balance: new Prisma.Decimal("123.45"), at: new Date() });
      const key = cacheKeys.escrowBalance(ids[0] as string);
      await hot.getOrLoad(key, load, { kind: "reference" });
      await latencies(20_000, () => hot.getOrLoad(key, load, { kind: "reference" })); // JIT warm-up
      const l1 = percentile(await latencies(100_000, () => hot.getOrLoad(key, load, { kind: "reference" })), 99) * 1000;
      rows.push({ name: "L1 hit p99", value: l1, unit: "µs", goal: "< 50 µs", met: l1 < 50 });

      // An L1 of one entry and two keys read in turn: every read misses memory and hits Redis.
      const l2Only = await open({ CACHE_L1_MAX_ENTRIES: "1" });
      const pair = [cacheKeys.escrowBalance(ids[1] as string), cacheKeys.escrowBalance(ids[2] as string)];
      for (const each of pair) await l2Only.getOrLoad(each, load, { kind: "reference" });
      await latencies(2000, (index) => l2Only.getOrLoad(pair[index % 2] as string, load, { kind: "reference" }));
      const l2Samples = await latencies(10_000, (index) => l2Only.getOrLoad(pair[index % 2] as string, load, { kind: "reference" }));
      const rawSamples = await latencies(10_000, (index) => redis.get(`${prefix}:cache:${pair[index % 2]}`));
      const l2 = percentile(l2Samples, 99);
      const raw = percentile(rawSamples, 99);
      rows.push({ name: "L2 hit p99 (vs a raw Redis GET p99)", value: l2, unit: "ms", baseline: raw, ratio: l2 / raw, goal: "< 1 ms", met: l2 < 1 });
      const l2Median = percentile(l2Samples, 50);
      const rawMedian = percentile(rawSamples, 50);
      rows.push({ name: "L2 hit p50 (vs a raw Redis GET p50)", value: l2Median, unit: "ms", baseline: rawMedian, ratio: l2Median / rawMedian });
      const l2Stats = l2Only.stats().kinds.reference;
      if (l2Stats.l2Hits < 10_000) throw new Error(`expected L2 hits only, got ${JSON.stringify(l2Stats)}`);

      // ── Zipf workload: 10k keys, L1 of 1,000 entries, 100k reads ──
      await redis.del(...ids.map((id) => `${prefix}:cache:${cacheKeys.escrowBalance(id)}`));
      const zipf = await open({ CACHE_L1_MAX_ENTRIES: "1000" });
      const draw = zipfSampler(accounts, 1.0);
      for (let read = 0; read < 100_000; read++) {
        const id = ids[draw()] as string;
        await zipf.getOrLoad(cacheKeys.escrowBalance(id), async () => ({ id, balance: new Prisma.Decimal("1.00") }), { kind: "reference" });
      }
      const zipfStats = zipf.stats().kinds.reference;
      const l1Share = zipfStats.l1Hits / (zipfStats.l1Hits + zipfStats.l2Hits + zipfStats.misses);
      rows.push({ name: "Zipf(s=1) reads over 10k keys, L1 of 1k: hit rate (both tiers)", value: zipfStats.hitRate * 100, unit: "%" });
      rows.push({ name: "  of which answered from L1", value: l1Share * 100, unit: "%" });

      // ── Invalidation reaching another cache's memory ──
      let received: (() => void) | undefined;
      const listener = await open({}, () => received?.());
      const writer = await open();
      const propagation: number[] = [];
      for (let index = 0; index < 300; index++) {
        const target = cacheKeys.user(`bench-${index}`);
        await listener.getOrLoad(target, async () => ({ index }), { kind: "reference" });
        const seen = new Promise<void>((resolve) => {
          received = resolve;
        });
        const start = performance.now();
        await writer.invalidate([target]);
        await seen;
        propagation.push(performance.now() - start);
      }
      const p99 = percentile(propagation, 99);
      rows.push({ name: "invalidation reaches another cache's memory, p99", value: p99, unit: "ms", goal: "< 100 ms", met: p99 < 100 });
      return rows;
    } finally {
      await Promise.all(caches.map((cache) => cache.close()));
      const keys = await redis.keys(`${prefix}:*`);
      for (let start = 0; start < keys.length; start += 1000) await redis.del(...keys.slice(start, start + 1000));
      redis.disconnect();
      await db.close();
    }
  },
};
