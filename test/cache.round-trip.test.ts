import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCache, type TwoTierCache } from "../src/cache/cache.js";
import type { Config } from "../src/lib/config.js";
import { Prisma } from "../src/lib/db.js";
import { cacheOptionsFrom, cacheSetups, cacheTestConfig } from "./support/cache-setups.js";
import { deleteTestKeys, memoryLogger, testKeyPrefix, testRedisConnection, useTestDb } from "./support/test-env.js";

describe.each(cacheSetups())("cache round trip ($name)", (setup) => {
  const testDatabase = useTestDb();
  let config: Config;
  let prefix: string;
  /** Where the cache's keys are: `prefix`, hash-tagged on a cluster. */
  let keyPrefix: string;
  const caches: TwoTierCache[] = [];
  const redis = testRedisConnection();
  const open = async (overrides: Record<string, string> = {}) => {
    const cache = await createCache(
      cacheOptionsFrom(cacheTestConfig(testDatabase.url, setup, { QUEUE_PREFIX: prefix, ...overrides }), memoryLogger("warn").logger),
    );
    caches.push(cache);
    return cache;
  };

  beforeAll(() => {
    config = cacheTestConfig(testDatabase.url, setup);
    prefix = config.QUEUE_PREFIX;
    keyPrefix = testKeyPrefix(redis, config);
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    await deleteTestKeys(redis, `${keyPrefix}:*`);
    redis.disconnect();
  });

  const account = () => ({
    id: "acc-1",
    currentBalance: new Prisma.Decimal("12345678901.23"),
    tiny: new Prisma.Decimal("0.000000000000000000000001"),
    openedAt: new Date("2026-01-31T23:59:59.123Z"),
    lastReconciledAt: null,
    ledgerCount: 9_007_199_254_740_993n,
    nested: [{ at: new Date(0), amount: new Prisma.Decimal("-0.01") }],
    // A caller's own object that happens to use the serializer's tag key.
    tricky: { $t: "Decimal", v: "1" },
  });

  it.runIf(setup.withRedis)("returns Decimal, Date and BigInt as the same types and values from Redis (another process's view)", async () => {
    const writer = await open();
    const reader = await open();
    await writer.getOrLoad("entity:acc-1", async () => account(), { kind: "reference" });

    let loaded = false;
    const value = await reader.getOrLoad(
      "entity:acc-1",
      async () => {
        loaded = true;
        return account();
      },
      { kind: "reference" },
    );
    expect(loaded).toBe(false);
    expect(reader.stats().kinds.reference.l2Hits).toBe(1);
    expect(value.currentBalance).toBeInstanceOf(Prisma.Decimal);
    expect(value.currentBalance.toFixed(2)).toBe("12345678901.23");
    expect(value.tiny.equals(new Prisma.Decimal("1e-24"))).toBe(true);
    expect(value.openedAt).toBeInstanceOf(Date);
    expect(value.openedAt.toISOString()).toBe("2026-01-31T23:59:59.123Z");
    expect(typeof value.ledgerCount).toBe("bigint");
    expect(value.ledgerCount).toBe(9_007_199_254_740_993n);
    expect(value.nested[0]?.at).toBeInstanceOf(Date);
    expect(value.nested[0]?.amount).toBeInstanceOf(Prisma.Decimal);
    expect(value.nested[0]?.amount.toString()).toBe("-0.01");
    expect(value.lastReconciledAt).toBeNull();
    expect(value.tricky).toEqual({ $t: "Decimal", v: "1" });
  });

  it("caches null (a row that does not exist) but not undefined", async () => {
    const cache = await open();
    let loads = 0;
    const loadNull = async () => {
      loads++;
      return null;
    };
    expect(await cache.getOrLoad("user:missing", loadNull, { kind: "reference" })).toBeNull();
    expect(await cache.getOrLoad("user:missing", loadNull, { kind: "reference" })).toBeNull();
    expect(loads).toBe(1);

    let undefinedLoads = 0;
    const loadUndefined = async () => {
      undefinedLoads++;
      return undefined;
    };
    await cache.getOrLoad("user:undefined", loadUndefined, { kind: "reference" });
    await cache.getOrLoad("user:undefined", loadUndefined, { kind: "reference" });
    expect(undefinedLoads).toBe(2);
  });

  it.runIf(setup.withRedis)("stores entries in Redis with the kind's TTL from config", async () => {
    const short = await open({ CACHE_TTL_BALANCE_MS: "1500", CACHE_TTL_AGGREGATE_MS: "45000" });
    await short.getOrLoad("escrow:balance:ttl", async () => ({ balance: new Prisma.Decimal(1) }), { kind: "balance" });
    await short.getOrLoad("counts:ttl", async () => ({ users: 1n }), { kind: "aggregate" });
    const balanceTtl = await redis.pttl(`${keyPrefix}:cache:escrow:balance:ttl`);
    const aggregateTtl = await redis.pttl(`${keyPrefix}:cache:counts:ttl`);
    expect(balanceTtl).toBeGreaterThan(0);
    expect(balanceTtl).toBeLessThanOrEqual(1500);
    expect(aggregateTtl).toBeGreaterThan(1500);
    expect(aggregateTtl).toBeLessThanOrEqual(45_000);
  });

  it.runIf(!setup.withRedis)("without Redis shares nothing: another process's cache loads from the database, and keeps the value in memory", async () => {
    const first = await open();
    const second = await open();
    expect(second.stats().l2).toEqual({ tier: "none", available: false });
    let loads = 0;
    const load = async () => {
      loads++;
      return { balance: new Prisma.Decimal("12.30"), at: new Date("2026-01-01T00:00:00.000Z") };
    };
    await first.getOrLoad("escrow:balance:solo", load, { kind: "balance" });
    const value = await second.getOrLoad("escrow:balance:solo", load, { kind: "balance" });
    expect(loads).toBe(2);
    // In memory, the loader's own value: nothing was serialized on the way.
    expect(value.balance).toBeInstanceOf(Prisma.Decimal);
    await second.getOrLoad("escrow:balance:solo", load, { kind: "balance" });
    expect(loads).toBe(2);
    expect(second.stats().kinds.balance).toMatchObject({ l1Hits: 1, l2Hits: 0, misses: 1, loads: 1 });
    expect(config.REDIS_URL).toBeUndefined();
  });

  it.runIf(!setup.withRedis)("refuses to start with neither Redis nor a database to hear invalidations from, naming both options", async () => {
    await expect(createCache({ prefix, config, logger: memoryLogger("warn").logger })).rejects.toThrow(/`redis` \(REDIS_URL.*`databaseUrl` \(DATABASE_URL/);
  });
});
