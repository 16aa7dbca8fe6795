import { afterAll, describe, expect, it } from "vitest";
import { createCache, type TwoTierCache } from "../src/cache/cache.js";
import { loadConfig } from "../src/lib/config.js";
import { Prisma } from "../src/lib/db.js";
import { memoryLogger, testPrefix, testRedis, testRedisUrl } from "./support/test-env.js";

describe("cache round trip", () => {
  const prefix = testPrefix();
  const config = loadConfig({});
  const caches: TwoTierCache[] = [];
  const redis = testRedis();
  const open = async () => {
    const cache = await createCache({ redis: testRedisUrl(), prefix, config, logger: memoryLogger("warn").logger });
    caches.push(cache);
    return cache;
  };

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
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

  it("returns Decimal, Date and BigInt as the same types and values from Redis (another process's view)", async () => {
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

  it("stores entries in Redis with the kind's TTL from config", async () => {
    const short = await createCache({
      redis: testRedisUrl(),
      prefix,
      config: loadConfig({ CACHE_TTL_BALANCE_MS: "1500", CACHE_TTL_AGGREGATE_MS: "45000" }),
      logger: memoryLogger("warn").logger,
    });
    caches.push(short);
    await short.getOrLoad("escrow:balance:ttl", async () => ({ balance: new Prisma.Decimal(1) }), { kind: "balance" });
    await short.getOrLoad("counts:ttl", async () => ({ users: 1n }), { kind: "aggregate" });
    const balanceTtl = await redis.pttl(`${prefix}:cache:escrow:balance:ttl`);
    const aggregateTtl = await redis.pttl(`${prefix}:cache:counts:ttl`);
    expect(balanceTtl).toBeGreaterThan(0);
    expect(balanceTtl).toBeLessThanOrEqual(1500);
    expect(aggregateTtl).toBeGreaterThan(1500);
    expect(aggregateTtl).toBeLessThanOrEqual(45_000);
  });
});
