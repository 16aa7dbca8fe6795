import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCache, type TwoTierCache } from "../src/cache/cache.js";
import { cacheKeys } from "../src/cache/cache-keys.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { Producer } from "../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { cacheOptionsFrom, cacheSetups, cacheTestConfig } from "./support/cache-setups.js";
import { deleteTestKeys, memoryLogger, testKeyPrefix, testRedisConnection, useTestDb } from "./support/test-env.js";

/** A job that changes data leaves no stale cache entry in another process's cache (here: invoice-totals). */
describe.each(cacheSetups())("invalidation by jobs ($name)", (setup) => {
  const testDatabase = useTestDb();
  let config: Config;
  let db: Db;
  let cache: TwoTierCache;
  let worker: RunningWorker;
  let producer: Producer;
  const redis = testRedisConnection();

  beforeAll(async () => {
    config = cacheTestConfig(testDatabase.url, setup);
    db = testDatabase.db;
    cache = await createCache(cacheOptionsFrom(config, memoryLogger("warn").logger));
    worker = await startWorker("invoice-totals", { config, logger: memoryLogger("warn").logger });
    producer = Producer.fromConfig(config);
  });

  afterAll(async () => {
    await worker?.close();
    await producer?.close();
    await cache?.close();
    await deleteTestKeys(redis, `${testKeyPrefix(redis, config)}:*`);
    redis.disconnect();
  });

  it("drops a cached invoice from every tier when invoice-totals recomputes it", async () => {
    const patient = await db.prisma.patient.create({ data: { firstName: "Ada", lastName: "Lovelace" } });
    const invoice = await db.prisma.invoice.create({
      data: { invoiceNumber: "INV-CACHE-1", patientId: patient.id, lineItems: { create: [{ description: "visit", quantity: "2", unitPrice: "10.00" }] } },
    });
    const key = cacheKeys.invoice(invoice.id);
    const load = () => db.prisma.invoice.findUniqueOrThrow({ where: { id: invoice.id }, select: { total: true } });
    expect((await cache.getOrLoad(key, load, { kind: "reference" })).total.toFixed(2)).toBe("0.00");
    if (setup.withRedis) expect(await redis.exists(`${testKeyPrefix(redis, config)}:cache:${key}`)).toBe(1);
    // Cached in memory: without an invalidation this process would keep serving 0.00.
    expect((await cache.getOrLoad(key, load, { kind: "reference" })).total.toFixed(2)).toBe("0.00");
    expect(cache.stats().kinds.reference.l1Hits).toBe(1);

    const events = await producer.store.queueEvents("invoice-totals");
    try {
      await events.waitUntilReady();
      const job = await producer.enqueue("invoice-totals", { invoiceIds: [invoice.id] });
      await waitForJob(job, events, 60_000);
    } finally {
      await events.close();
    }

    if (setup.withRedis) expect(await redis.exists(`${testKeyPrefix(redis, config)}:cache:${key}`)).toBe(0);
    // The message reaches this process's memory tier asynchronously; allow for a loaded machine.
    const deadline = Date.now() + 10_000;
    let total = "";
    while (Date.now() < deadline) {
      total = (await cache.getOrLoad(key, load, { kind: "reference" })).total.toFixed(2);
      if (total === "20.00") break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(total).toBe("20.00");
  });
});
