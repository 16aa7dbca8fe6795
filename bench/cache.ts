import type { Job } from "bullmq";
import { Redis } from "ioredis";
import { createCache, type TwoTierCache } from "../src/cache/cache.js";
import { invalidateCacheKeys } from "../src/cache/cache-invalidation.js";
import { cacheKeys } from "../src/cache/cache-keys.js";
import { deserializeCacheValue, serializeCacheValue } from "../src/cache/cache-serializer.js";
import { loadEscrowBalance, loadGlobalCounts } from "../src/jobs/cache-prefetch/cache-entities.js";
import { cachePrefetchPayload } from "../src/jobs/cache-prefetch/contract.js";
import { handleCachePrefetch } from "../src/jobs/cache-prefetch/handler.js";
import { loadConfig } from "../src/lib/config.js";
import { createDb, type Db, Prisma } from "../src/lib/db.js";
import { createLogger } from "../src/lib/logger.js";
import type { JobContext } from "../src/queues/job-context.js";
import { workerServices } from "../src/queues/worker-services.js";
import { benchRun } from "./bench-run.js";
import { type BenchRow, type BenchSection, pairedRatio } from "./bench-section.js";
import { pairedRounds } from "./paired-rounds.js";
import { benchPrefix, benchRedisUrl, freshBenchDatabase, timeMs } from "./support.js";

/**
 * The cache's figures (issue 6): prefetch of 10k escrow balances next to the
 * same reads and writes one key at a time, and L2 hit latency (p99, p50) next
 * to a raw Redis GET, both in paired rounds; L1 hit latency; hit rate of a
 * Zipf-distributed read workload; how long an invalidation takes to reach
 * another cache's memory, through Redis and, without Redis, through
 * PostgreSQL NOTIFY. Issue 17: what a shared tier in PostgreSQL would save,
 * read by read, against the loaders it would front (the measurement behind
 * having none; docs/cache.md, "Without Redis").
 */
const accounts = 10_000;
/** Paired rounds of the prefetch against one key at a time. */
const ROUNDS = Number(process.env.BENCH_CACHE_ROUNDS ?? 3);
/** Paired rounds of L2 reads against raw GETs, and the reads of each side per round. */
const LATENCY_ROUNDS = 5;
const LATENCY_SAMPLES = 2000;

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
    const db = createDb({ url, poolSize: 4, logger, slowQueryMs: 600_000 });
    const redis = new Redis(benchRedisUrl);
    const prefix = benchPrefix();
    const config = loadConfig({ QUEUE_BACKEND: "redis", DATABASE_URL: url, REDIS_URL: benchRedisUrl, QUEUE_PREFIX: prefix });
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
        signal: new AbortController().signal,
        redis,
        config,
        prefix,
        services: workerServices(config),
        sharedCache: { redis, prefix },
        invalidateCache: (keys) => invalidateCacheKeys(redis, prefix, keys),
        reportProgress: async () => undefined,
        postpone: async () => {
          throw new Error("not in a worker");
        },
        waitingJobs: async () => 0,
      };
      const prefetch = (payload: { limit: number }) => handleCachePrefetch(cachePrefetchPayload.parse({ kinds: ["escrowBalances"], ...payload }), context);
      await prefetch({ limit: 100 }); // warm connections and script cache
      const oneAtATime = async () => {
        for (const id of ids) {
          const balance = await db.prisma.escrowAccount.findUnique({
            where: { id },
            select: { id: true, currentBalance: true, availableBalance: true, pendingBalance: true, heldBalance: true, version: true, updatedAt: true },
          });
          await redis.set(`${prefix}:cache:${cacheKeys.escrowBalance(id)}`, JSON.stringify(balance), "PX", config.CACHE_TTL_BALANCE_MS);
        }
      };
      const prefetchPaired = await pairedRounds({
        label: "cache prefetch",
        rounds: ROUNDS,
        baseline: () => timeMs(oneAtATime),
        subject: () => timeMs(() => prefetch({ limit: accounts })),
        // Times: how many times faster the prefetch is.
        ratio: (oneByOne, prefetched) => oneByOne / prefetched,
        show: (ms) => `${Math.round(ms)} ms`,
      });
      const prefetchMs = prefetchPaired.spreadOf((round) => round.subject);
      rows.push({
        name: `prefetch ${accounts} escrow balances (median of ${ROUNDS})`,
        value: prefetchMs.median,
        unit: "ms",
        valueRange: { min: prefetchMs.min, max: prefetchMs.max, runs: ROUNDS },
        goal: "< 500 ms",
        met: prefetchMs.median < 500,
      });
      rows.push({
        name: `prefetch vs the same ${accounts} reads and writes one key at a time (${ROUNDS} paired rounds; ratio = one at a time / prefetch, times faster)`,
        value: prefetchMs.median,
        unit: "ms",
        baseline: prefetchPaired.spreadOf((round) => round.baseline).median,
        ...pairedRatio(prefetchPaired.ratio, ROUNDS),
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
      // Paired: each round takes L2 reads and raw GETs back to back, alternating which goes first.
      const latencyPaired = await pairedRounds({
        label: "cache L2 vs GET",
        rounds: LATENCY_ROUNDS,
        baseline: () => latencies(LATENCY_SAMPLES, (index) => redis.get(`${prefix}:cache:${pair[index % 2]}`)),
        subject: () => latencies(LATENCY_SAMPLES, (index) => l2Only.getOrLoad(pair[index % 2] as string, load, { kind: "reference" })),
        ratio: (raw, l2) => percentile(l2, 99) / percentile(raw, 99),
      });
      const p99Of = (samples: number[]) => percentile(samples, 99);
      const p50Of = (samples: number[]) => percentile(samples, 50);
      const l2 = latencyPaired.spreadOf((round) => p99Of(round.subject)).median;
      rows.push({
        name: `L2 hit p99 vs a raw Redis GET p99 (${LATENCY_ROUNDS} paired rounds of ${LATENCY_SAMPLES} reads; ratio = L2 / GET per round, lower is better)`,
        value: l2,
        unit: "ms",
        baseline: latencyPaired.spreadOf((round) => p99Of(round.baseline)).median,
        ...pairedRatio(latencyPaired.ratio, LATENCY_ROUNDS),
        goal: "< 1 ms",
        met: l2 < 1,
      });
      rows.push({
        name: "L2 hit p50 vs a raw Redis GET p50 (same rounds; ratio = L2 / GET)",
        value: latencyPaired.spreadOf((round) => p50Of(round.subject)).median,
        unit: "ms",
        baseline: latencyPaired.spreadOf((round) => p50Of(round.baseline)).median,
        ...pairedRatio(
          latencyPaired.spreadOf((round) => p50Of(round.subject) / p50Of(round.baseline)),
          LATENCY_ROUNDS,
        ),
      });
      const l2Stats = l2Only.stats().kinds.reference;
      if (l2Stats.l2Hits < LATENCY_ROUNDS * LATENCY_SAMPLES) throw new Error(`expected L2 hits only, got ${JSON.stringify(l2Stats)}`);

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

      // ── Without Redis: invalidation through PostgreSQL NOTIFY, and the prefetch's fallback ──
      const openWithoutRedis = async (onInvalidation?: (keys: string[]) => void) => {
        const cache = await createCache({ databaseUrl: url, prefix, config: loadConfig({}), logger, onInvalidation });
        caches.push(cache);
        return cache;
      };
      let notified: (() => void) | undefined;
      const pgListener = await openWithoutRedis(() => notified?.());
      const pgWriter = await openWithoutRedis();
      const pgPropagation: number[] = [];
      for (let index = 0; index < 300; index++) {
        const target = cacheKeys.user(`bench-pg-${index}`);
        await pgListener.getOrLoad(target, async () => ({ index }), { kind: "reference" });
        const seen = new Promise<void>((resolve) => {
          notified = resolve;
        });
        const start = performance.now();
        await pgWriter.invalidate([target]);
        await seen;
        pgPropagation.push(performance.now() - start);
      }
      const pgP99 = percentile(pgPropagation, 99);
      rows.push({
        name: "invalidation reaches another cache's memory through PostgreSQL NOTIFY (no Redis), p99",
        value: pgP99,
        unit: "ms",
        goal: "< 100 ms",
        met: pgP99 < 100,
      });
      const noTierRuns: number[] = [];
      const withoutSharedTier = { ...context, sharedCache: undefined };
      for (let run = 0; run < 3; run++) {
        noTierRuns.push(await timeMs(() => handleCachePrefetch(cachePrefetchPayload.parse({ kinds: ["escrowBalances"], limit: accounts }), withoutSharedTier)));
      }
      rows.push({
        name: `prefetch without a shared tier: ${accounts} hot balances read through their primary keys (best of 3)`,
        value: Math.min(...noTierRuns),
        unit: "ms",
      });

      rows.push(...(await postgresTierRows(db, ids)));
      return rows;
    } finally {
      await Promise.all(caches.map((cache) => cache.close()));
      await benchRun.removeKeys(prefix, redis);
      redis.disconnect();
      await db.close();
      await benchRun.dropDatabase(url);
    }
  },
};

/**
 * What a shared tier in PostgreSQL would buy: a read of one entry from an
 * UNLOGGED table by key (with the invalidation sequence its compare-and-set
 * would need), next to the loaders it would front, in paired rounds so the
 * machine's load weighs on both alike. p50 of each.
 */
async function postgresTierRows(db: Db, ids: string[]): Promise<BenchRow[]> {
  // Takes nothing. A table shaped as the tier would be (key, serialized value, expiry) and its sequence; dropped below.
  await db.pool.query(
    `CREATE UNLOGGED TABLE IF NOT EXISTS "bench_cache_tier" ("key" text PRIMARY KEY, "value" text NOT NULL, "expiresAt" timestamptz NOT NULL)`,
  );
  await db.pool.query(`CREATE SEQUENCE IF NOT EXISTS "bench_cache_tier_seq"`);
  try {
    const sample = ids.slice(0, 2000);
    for (const id of sample) {
      // Takes $1 key, $2 serialized value. Stores the entry for an hour.
      await db.pool.query(
        `INSERT INTO "bench_cache_tier" VALUES ($1, $2, now() + interval '1 hour') ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value"`,
        [cacheKeys.escrowBalance(id), serializeCacheValue(await loadEscrowBalance(db, id))],
      );
    }
    await db.pool.query(`INSERT INTO "bench_cache_tier" VALUES ($1, $2, now() + interval '1 hour') ON CONFLICT ("key") DO NOTHING`, [
      cacheKeys.globalCounts(),
      serializeCacheValue(await loadGlobalCounts(db)),
    ]);
    await db.pool.query(`ANALYZE "bench_cache_tier"`);
    // Takes $1 key. Returns the unexpired value (or null) and the sequence, in one round trip.
    const tierRead = async (key: string) => {
      const { rows } = await db.pool.query<{ value: string | null }>(
        `SELECT (SELECT "value" FROM "bench_cache_tier" WHERE "key" = $1 AND "expiresAt" > now()) AS value, (SELECT last_value FROM "bench_cache_tier_seq") AS seq`,
        [key],
      );
      return rows[0]?.value ? deserializeCacheValue(rows[0].value) : null;
    };
    const at = (index: number) => sample[index % sample.length] as string;
    // Takes $1 id. The loader's columns by primary key, in plain SQL: what the loader costs without Prisma.
    const plainRead = (id: string) =>
      db.pool.query(
        `SELECT "id", "currentBalance", "availableBalance", "pendingBalance", "heldBalance", "version", "updatedAt" FROM "escrow_accounts" WHERE "id" = $1`,
        [id],
      );
    const pairs = [
      {
        name: "escrow balance loader (Prisma findUnique)",
        tier: (index: number) => tierRead(cacheKeys.escrowBalance(at(index))),
        loader: (index: number) => loadEscrowBalance(db, at(index)),
        n: 4000,
      },
      {
        name: "same balance by primary key in plain SQL",
        tier: (index: number) => tierRead(cacheKeys.escrowBalance(at(index))),
        loader: (index: number) => plainRead(at(index)),
        n: 4000,
      },
      { name: "global counts loader", tier: () => tierRead(cacheKeys.globalCounts()), loader: () => loadGlobalCounts(db), n: 200 },
    ];
    const rows: BenchRow[] = [];
    for (const pair of pairs) {
      const tier: number[] = [];
      const loader: number[] = [];
      await latencies(Math.min(200, pair.n), pair.tier);
      await latencies(Math.min(200, pair.n), pair.loader);
      for (let round = 0; round < 10; round++) {
        tier.push(...(await latencies(pair.n / 10, pair.tier)));
        loader.push(...(await latencies(pair.n / 10, pair.loader)));
      }
      const tierP50 = percentile(tier, 50);
      const loaderP50 = percentile(loader, 50);
      rows.push({
        name: `a PostgreSQL tier read (UNLOGGED table) vs the ${pair.name}, p50`,
        value: tierP50,
        unit: "ms",
        baseline: loaderP50,
        ratio: tierP50 / loaderP50,
      });
    }
    return rows;
  } finally {
    await db.pool.query(`DROP TABLE IF EXISTS "bench_cache_tier"; DROP SEQUENCE IF EXISTS "bench_cache_tier_seq"`);
  }
}
