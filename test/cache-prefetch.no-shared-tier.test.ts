import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { cacheTestConfig } from "./support/cache-setups.js";
import { directJobContext, runHandler } from "./support/direct-job-context.js";
import { testDb, testRedis, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * cache-prefetch without a shared tier (no REDIS_URL): there is nowhere to
 * store the hot set for other processes, so it stores nothing and says so,
 * and reads the hot rows through their primary keys, as the cache's loaders
 * do, so their pages are in PostgreSQL's buffer cache.
 */
describe("cache-prefetch without a shared tier", () => {
  const testDatabase = useTestDb();
  let config: Config;
  const redis = testRedis();

  beforeAll(async () => {
    config = cacheTestConfig(testDatabase.url, { name: "no Redis", withRedis: false });
    const { db } = testDatabase;
    await db.prisma.escrowAccount.createMany({
      data: [
        ...Array.from({ length: 30 }, (_, index) => ({ accountNumber: `ACT-${index}`, currentBalance: `${index}.00` })),
        ...Array.from({ length: 4 }, (_, index) => ({ accountNumber: `FRZ-${index}`, status: "FROZEN" as const })),
      ],
    });
    await db.prisma.user.createMany({
      data: [
        ...Array.from({ length: 12 }, (_, index) => ({ email: `active${index}@example.com`, lastActiveAt: new Date(Date.UTC(2026, 0, 1, index)) })),
        ...Array.from({ length: 3 }, (_, index) => ({ email: `never${index}@example.com` })),
      ],
    });
  });

  afterAll(() => {
    redis.disconnect();
  });

  /** Index scans started on each primary key so far, as PostgreSQL's statistics count them. */
  const primaryKeyScans = async () => {
    const { rows } = await testDatabase.db.pool.query<{ indexrelname: string; scans: number }>(
      `SELECT indexrelname, idx_scan::int AS scans FROM pg_stat_user_indexes WHERE indexrelname IN ('escrow_accounts_pkey', 'users_pkey')`,
    );
    return Object.fromEntries(rows.map((row) => [row.indexrelname, row.scans])) as Record<"escrow_accounts_pkey" | "users_pkey", number>;
  };

  it("stores nothing, reports sharedTier none with the rows it read, and reads them through their primary keys", async () => {
    const before = await primaryKeyScans();
    // A Db of its own, closed after the run: a backend flushes its statistics when it exits.
    const db = testDb(testDatabase.url);
    let result: Awaited<ReturnType<typeof runHandler<"cache-prefetch">>>;
    try {
      const { context } = directJobContext(db, config);
      expect(context.sharedCache).toBeUndefined();
      result = await runHandler("cache-prefetch", {}, context);
    } finally {
      await db.close();
    }
    expect(result.sharedTier).toBe("none");
    expect(result.warmed).toEqual({ escrowBalances: 0, activeUsers: 0, globalCounts: 0 });
    expect(result.skipped).toEqual({ escrowBalances: 0, activeUsers: 0, globalCounts: 0 });
    expect(result.read).toEqual({ escrowBalances: 30, activeUsers: 12, globalCounts: 1 });
    // One primary-key lookup per hot row, as loadEscrowBalance and loadUser make: not a scan of the table.
    await waitFor("the run's statistics", async () => {
      const after = await primaryKeyScans();
      return after.escrow_accounts_pkey - before.escrow_accounts_pkey >= 30 && after.users_pkey - before.users_pkey >= 12;
    });
    // Redis is running on this machine, but no REDIS_URL means no shared tier: nothing went there.
    expect(await redis.keys(`${config.QUEUE_PREFIX}:*`)).toEqual([]);
  });

  it("respects the limit, taking the most recently changed accounts and most recently active users", async () => {
    const { context } = directJobContext(testDatabase.db, config);
    const result = await runHandler("cache-prefetch", { kinds: ["activeUsers", "escrowBalances"], limit: 5 }, context);
    expect(result.read).toEqual({ escrowBalances: 5, activeUsers: 5, globalCounts: 0 });
  });
});
