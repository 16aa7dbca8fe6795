import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCache, type TwoTierCache } from "../src/cache/cache.js";
import { invalidateCacheKeys } from "../src/cache/cache-invalidation.js";
import { cacheKeys } from "../src/cache/cache-keys.js";
import { deserializeCacheValue } from "../src/cache/cache-serializer.js";
import { type CachedUser, type EscrowBalance, type GlobalCounts, loadEscrowBalance, loadUser } from "../src/jobs/cache-prefetch/cache-entities.js";
import type { Config } from "../src/lib/config.js";
import { type Db, Prisma } from "../src/lib/db.js";
import type { PayloadInput } from "../src/queues/contracts.js";
import type { JobContext } from "../src/queues/job-context.js";
import { cacheOptionsFrom, cacheTestConfig } from "./support/cache-setups.js";
import { directJobContext, runHandler } from "./support/direct-job-context.js";
import { type RedisProxy, startRedisProxy } from "./support/redis-proxy.js";
import { memoryLogger, testRedis, useTestDb } from "./support/test-env.js";

/** cache-prefetch with a shared tier (REDIS_URL set; the queues on either backend). */
describe("cache-prefetch into the Redis tier", () => {
  const testDatabase = useTestDb();
  let config: Config;
  let db: Db;
  let cache: TwoTierCache;
  const redis = testRedis();
  let activeIds: string[] = [];
  let context: JobContext;
  // The prefetch's Redis link in the race tests: through a proxy that can hold its writes in flight.
  let proxy: RedisProxy;
  let slowRedis: Redis;

  beforeAll(async () => {
    config = cacheTestConfig(testDatabase.url, { name: "Redis tier", withRedis: true });
    db = testDatabase.db;
    await db.prisma.escrowAccount.createMany({
      data: [
        ...Array.from({ length: 50 }, (_, index) => ({ accountNumber: `ACT-${index}`, currentBalance: `${index}.25`, availableBalance: `${index}.25` })),
        ...Array.from({ length: 5 }, (_, index) => ({ accountNumber: `FRZ-${index}`, status: "FROZEN" as const, currentBalance: "1.00" })),
      ],
    });
    activeIds = (await db.prisma.escrowAccount.findMany({ where: { status: "ACTIVE" }, select: { id: true } })).map((row) => row.id);
    await db.prisma.user.createMany({
      data: [
        ...Array.from({ length: 20 }, (_, index) => ({ email: `active${index}@example.com`, lastActiveAt: new Date(Date.UTC(2026, 0, 1, 0, index)) })),
        ...Array.from({ length: 5 }, (_, index) => ({ email: `never${index}@example.com` })),
        // Text that JSON must escape, and a date with milliseconds.
        { email: 'o"brien\\@example.com', name: 'Seán "Quote" O\\Brien\n\t«ü» 😀', lastActiveAt: new Date("2026-02-03T04:05:06.789Z") },
      ],
    });
    cache = await createCache(cacheOptionsFrom(config, memoryLogger("warn").logger));
    context = { ...directJobContext(db, config).context, sharedCache: { redis, prefix: config.QUEUE_PREFIX } };
    proxy = await startRedisProxy(config.REDIS_URL as string);
    slowRedis = new Redis(proxy.url, { maxRetriesPerRequest: null });
  });

  afterAll(async () => {
    slowRedis?.disconnect();
    await proxy?.close();
    await cache?.close();
    const keys = await redis.keys(`${config.QUEUE_PREFIX}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  const prefetch = (payload: PayloadInput<"cache-prefetch">) => runHandler("cache-prefetch", payload, context);

  /**
   * Runs the prefetch with its first Redis write held in flight, as on a slow
   * link, so that `write` (a real write and invalidation from this test) lands
   * after the prefetch read the database and before it stores what it read;
   * then lets the held write through.
   */
  const prefetchRacing = async (payload: PayloadInput<"cache-prefetch">, write: () => Promise<void>) => {
    // The prefetch stores each chunk with one EVALSHA (cache-redis-tier.ts).
    const store = proxy.holdNext("evalsha");
    const prefetching = runHandler("cache-prefetch", payload, { ...context, sharedCache: { redis: slowRedis, prefix: config.QUEUE_PREFIX } });
    try {
      await Promise.race([store.held, prefetching]);
      await write();
    } finally {
      store.release();
    }
    return prefetching;
  };

  const stored = async <T>(key: string): Promise<T | null> => {
    const text = await redis.get(`${config.QUEUE_PREFIX}:cache:${key}`);
    return text === null ? null : deserializeCacheValue<T>(text);
  };

  it("warms active escrow balances, recently active users and global counts, and reports the counts", async () => {
    const result = await prefetch({});
    expect(result.sharedTier).toBe("redis");
    expect(result.warmed).toEqual({ escrowBalances: 50, activeUsers: 21, globalCounts: 1 });
    expect(result.skipped).toEqual({ escrowBalances: 0, activeUsers: 0, globalCounts: 0 });
    expect(result.read).toEqual(result.warmed);

    const balance = await stored<EscrowBalance>(cacheKeys.escrowBalance(activeIds[0] as string));
    expect(balance?.currentBalance).toBeInstanceOf(Prisma.Decimal);
    const counts = await stored<GlobalCounts>(cacheKeys.globalCounts());
    expect(counts).toMatchObject({ users: 26n, activeEscrowAccounts: 50n, pendingTransactions: 0n });
    // The prefetch builds values in SQL; they must equal what the single-key loaders return.
    for (const accountId of activeIds.slice(0, 5)) {
      expect(await stored(cacheKeys.escrowBalance(accountId))).toEqual(await loadEscrowBalance(db, accountId));
    }
    for (const user of await db.prisma.user.findMany({ where: { lastActiveAt: { not: null } }, select: { id: true } })) {
      expect(await stored<CachedUser>(cacheKeys.user(user.id))).toEqual(await loadUser(db, user.id));
    }
    const tricky = await db.prisma.user.findFirstOrThrow({ where: { email: { startsWith: "o" } } });
    const storedTricky = await stored<CachedUser>(cacheKeys.user(tricky.id));
    expect(storedTricky?.name).toBe('Seán "Quote" O\\Brien\n\t«ü» 😀');
    expect(storedTricky?.lastActiveAt?.toISOString()).toBe("2026-02-03T04:05:06.789Z");
    const frozen = await db.prisma.escrowAccount.findFirstOrThrow({ where: { status: "FROZEN" } });
    expect(await stored(cacheKeys.escrowBalance(frozen.id))).toBeNull();

    // A reader in any process now gets the prefetched value from Redis without touching the database.
    const id = activeIds[3] as string;
    const value = await cache.getOrLoad<EscrowBalance>(
      cacheKeys.escrowBalance(id),
      async () => {
        throw new Error("should have been served from Redis");
      },
      { kind: "balance" },
    );
    expect(value.currentBalance.toFixed(2)).toBe((await loadEscrowBalance(db, id))?.currentBalance.toFixed(2));
  });

  it("respects the limit, taking the most recently active users", async () => {
    const result = await prefetch({ kinds: ["activeUsers"], limit: 5 });
    expect(result.warmed).toEqual({ escrowBalances: 0, activeUsers: 5, globalCounts: 0 });
  });

  it("does not overwrite a balance written (and invalidated) during the prefetch with the older value it read", async () => {
    const racedId = activeIds[7] as string;
    const key = cacheKeys.escrowBalance(racedId);
    await redis.del(`${config.QUEUE_PREFIX}:cache:${key}`);
    // A settlement commits after the prefetch read the balances and before it writes them.
    const result = await prefetchRacing({ kinds: ["escrowBalances"] }, async () => {
      await db.prisma.escrowAccount.update({ where: { id: racedId }, data: { currentBalance: "999.99", version: { increment: 1 } } });
      await invalidateCacheKeys(redis, config.QUEUE_PREFIX, [key]);
    });
    expect(result.skipped.escrowBalances).toBe(1);
    expect(result.warmed.escrowBalances).toBe(49);
    expect(await stored(key)).toBeNull();
    const value = await cache.getOrLoad(key, () => loadEscrowBalance(db, racedId), { kind: "balance" });
    expect(value?.currentBalance.toFixed(2)).toBe("999.99");
  });

  it("keeps the newer value a reader cached after the write, instead of the prefetch's older one", async () => {
    const racedId = activeIds[9] as string;
    const key = cacheKeys.escrowBalance(racedId);
    await prefetchRacing({ kinds: ["escrowBalances"] }, async () => {
      await db.prisma.escrowAccount.update({ where: { id: racedId }, data: { currentBalance: "555.55", version: { increment: 1 } } });
      await invalidateCacheKeys(redis, config.QUEUE_PREFIX, [key]);
      // Another process reads it straight away and caches the new balance.
      await cache.getOrLoad(key, () => loadEscrowBalance(db, racedId), { kind: "balance" });
    });
    expect((await stored<EscrowBalance>(key))?.currentBalance.toFixed(2)).toBe("555.55");
  });

  it("does not let a slow reader store the balance it read before a write committed", async () => {
    const racedId = activeIds[11] as string;
    const key = cacheKeys.escrowBalance(racedId);
    await cache.invalidate([key]);
    const balanceBefore = (await loadEscrowBalance(db, racedId))?.currentBalance.toFixed(2);
    const old = await cache.getOrLoad(
      key,
      async () => {
        const before = await loadEscrowBalance(db, racedId);
        // The write and its invalidation land while this reader is still loading.
        await db.prisma.escrowAccount.update({ where: { id: racedId }, data: { currentBalance: "777.77", version: { increment: 1 } } });
        await invalidateCacheKeys(redis, config.QUEUE_PREFIX, [key]);
        return before;
      },
      { kind: "balance" },
    );
    expect(old?.currentBalance.toFixed(2)).toBe(balanceBefore);
    expect(await stored(key)).toBeNull();
    // Nor serve it from its own memory.
    const fresh = await cache.getOrLoad(key, () => loadEscrowBalance(db, racedId), { kind: "balance" });
    expect(fresh?.currentBalance.toFixed(2)).toBe("777.77");
  });
  it("streams many rows in chunks, and a write to a row of the last chunk still wins", async () => {
    await db.prisma.escrowAccount.createMany({
      data: Array.from({ length: 2100 }, (_, index) => ({ accountNumber: `MANY-${index}`, currentBalance: "5.00" })),
    });
    const ordered = (
      await db.pool.query<{ id: string }>(`SELECT "id"::text AS id FROM "escrow_accounts" WHERE "status" = 'ACTIVE' ORDER BY "updatedAt" DESC, "id"`)
    ).rows;
    const lastId = ordered[ordered.length - 1]?.id as string;
    const key = cacheKeys.escrowBalance(lastId);
    // Lands once the first chunk is in hand; the row it changes is read in the last one.
    const result = await prefetchRacing({ kinds: ["escrowBalances"], limit: 100_000 }, async () => {
      await db.prisma.escrowAccount.update({ where: { id: lastId }, data: { currentBalance: "4242.42", version: { increment: 1 } } });
      await invalidateCacheKeys(redis, config.QUEUE_PREFIX, [key]);
    });
    expect(result.warmed.escrowBalances + result.skipped.escrowBalances).toBe(ordered.length);
    expect(result.skipped.escrowBalances).toBe(1);
    expect(await stored(key)).toBeNull();
    const others = ordered.filter((row) => row.id !== lastId).map((row) => `${config.QUEUE_PREFIX}:cache:${cacheKeys.escrowBalance(row.id)}`);
    expect(await redis.exists(...others)).toBe(others.length);
  });
});
