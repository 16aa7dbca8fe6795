import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCache, readCacheStats, type TwoTierCache } from "../src/cache/cache.js";
import type { Config } from "../src/lib/config.js";
import { queueStoreOptions } from "../src/lib/config.js";
import { redisMetricsStore } from "../src/lib/metrics.js";
import { createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import { cacheOptionsFrom, cacheSetups, cacheTestConfig } from "./support/cache-setups.js";
import { readSeries } from "./support/metric-series.js";
import { memoryLogger, testRedis, useTestDb } from "./support/test-env.js";

describe.each(cacheSetups())("cache stampede protection and statistics ($name)", (setup) => {
  const testDatabase = useTestDb();
  let config: Config;
  let store: QueueStore;
  const caches: TwoTierCache[] = [];
  const redis = testRedis();
  const open = async () => {
    const cache = await createCache(cacheOptionsFrom(config, memoryLogger("warn").logger, { metricsFlushMs: 60_000 }));
    caches.push(cache);
    return cache;
  };

  beforeAll(() => {
    config = cacheTestConfig(testDatabase.url, setup);
    // Where /metrics and `dbjobs status` read every process's counters: the queue store's metrics.
    store = createQueueStore({ ...queueStoreOptions(config), logger: memoryLogger("warn").logger });
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    await store?.close();
    const keys = await redis.keys(`${config.QUEUE_PREFIX}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it("runs the loader once for 100 concurrent misses on one key, and every caller gets its value", async () => {
    const cache = await open();
    let loads = 0;
    const loader = async () => {
      loads++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      return { balance: "100.00", load: loads };
    };
    const results = await Promise.all(Array.from({ length: 100 }, () => cache.getOrLoad("escrow:balance:hot", loader, { kind: "balance" })));
    expect(loads).toBe(1);
    expect(results.every((result) => result.balance === "100.00" && result.load === 1)).toBe(true);
    const stats = cache.stats().kinds.balance;
    expect(stats.loads).toBe(1);
    expect(stats.misses).toBe(100);
  });

  it("shares a failing load among its waiters and retries on the next call", async () => {
    const cache = await open();
    let loads = 0;
    const failing = async () => {
      loads++;
      await new Promise((resolve) => setTimeout(resolve, 20));
      throw new Error("database unavailable");
    };
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => cache.getOrLoad("user:flaky", failing, { kind: "reference" })));
    expect(outcomes.every((outcome) => outcome.status === "rejected" && /database unavailable/.test(String(outcome.reason)))).toBe(true);
    expect(loads).toBe(1);
    expect(await cache.getOrLoad("user:flaky", async () => "recovered", { kind: "reference" })).toBe("recovered");
  });

  it("counts hits per tier and kind, and readCacheStats sums every process's counts from the metrics store", async () => {
    const first = await open();
    const second = await open();
    const load = async () => ({ users: 42n });
    await first.getOrLoad("counts:global", load, { kind: "aggregate" }); // miss + load
    await first.getOrLoad("counts:global", load, { kind: "aggregate" }); // L1 hit
    await second.getOrLoad("counts:global", load, { kind: "aggregate" }); // L2 hit with Redis; without, a miss + load from the database
    await second.getOrLoad("counts:global", load, { kind: "aggregate" }); // L1 hit
    await second.getOrLoad("user:1", async () => ({ id: "1" }), { kind: "reference" }); // miss + load

    expect(first.stats().kinds.aggregate).toMatchObject({ l1Hits: 1, l2Hits: 0, misses: 1, loads: 1, hitRate: 0.5 });
    const secondExpected = setup.withRedis
      ? { l1Hits: 1, l2Hits: 1, misses: 0, loads: 0, hitRate: 1 }
      : { l1Hits: 1, l2Hits: 0, misses: 1, loads: 1, hitRate: 0.5 };
    expect(second.stats().kinds.aggregate).toMatchObject(secondExpected);
    expect(second.stats().l2).toEqual(setup.withRedis ? { tier: "redis", available: true } : { tier: "none", available: false });
    expect(second.stats().invalidation).toEqual({ via: setup.withRedis ? "redis" : "postgres", connected: true });

    // Closing flushes the counters to the metrics store that /metrics and `dbjobs status` read.
    await first.close();
    await second.close();
    const summed = await readCacheStats(store.metrics());
    expect(summed.kinds.aggregate).toMatchObject(
      setup.withRedis ? { l1Hits: 2, l2Hits: 1, misses: 1, loads: 1, hitRate: 0.75 } : { l1Hits: 2, l2Hits: 0, misses: 2, loads: 2, hitRate: 0.5 },
    );
    expect(summed.kinds.reference.loads).toBeGreaterThanOrEqual(1);
    if (config.QUEUE_BACKEND === "redis") {
      const raw = await readSeries(redisMetricsStore(redis, config.QUEUE_PREFIX));
      expect(Number(raw.get('dbjobs_cache_hits_total{kind="aggregate",tier="l2"}'))).toBe(1);
    }
  });
});
