import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { SessionLostError } from "../src/lib/errors.js";
import type { JobContext } from "../src/queues/job-context.js";
import { toJobFailure } from "../src/queues/job-failure.js";
import { directJobContext, runHandler } from "./support/direct-job-context.js";
import { type RedisProxy, startRedisProxy } from "./support/redis-proxy.js";
import { testConfig, testRedis, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * PostgreSQL drops the connection the prefetch streams its read through (as a
 * failover or an idle-session killer would) while the prefetch holds it. The
 * job must fail, retryably, and the process must not: an 'error' event on a
 * checked-out connection with no listener would end the worker.
 */
describe("cache-prefetch when PostgreSQL drops its read connection", () => {
  const testDatabase = useTestDb();
  let config: Config;
  let context: JobContext;
  let proxy: RedisProxy;
  let slowRedis: Redis;
  const redis = testRedis();

  beforeAll(async () => {
    config = testConfig(testDatabase.url);
    await testDatabase.db.prisma.escrowAccount.createMany({
      data: Array.from({ length: 20 }, (_, index) => ({ accountNumber: `KILL-${index}`, currentBalance: "1.00" })),
    });
    proxy = await startRedisProxy(config.REDIS_URL as string);
    slowRedis = new Redis(proxy.url, { maxRetriesPerRequest: null });
    context = { ...directJobContext(testDatabase.db, config).context, sharedCache: { redis: slowRedis, prefix: config.QUEUE_PREFIX } };
  });

  afterAll(async () => {
    slowRedis?.disconnect();
    await proxy?.close();
    const keys = await redis.keys(`${config.QUEUE_PREFIX}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it("fails the job with a retryable SessionLostError, and the next run warms the cache", async () => {
    // Holding the first write keeps the read's connection checked out, its cursor open, while the test kills it.
    const store = proxy.holdNext("evalsha");
    const prefetching = runHandler("cache-prefetch", { kinds: ["escrowBalances"] }, context);
    prefetching.catch(() => undefined);
    let outcome: unknown;
    try {
      await Promise.race([store.held, prefetching]);
      const { rows } = await waitFor("the prefetch's cursor", async () => {
        const found = await testDatabase.db.pool.query<{ killed: boolean }>(
          `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
            WHERE datname = current_database() AND state = 'idle in transaction' AND query LIKE 'FETCH % FROM dbjobs_cache_prefetch'`,
        );
        return found.rows.length > 0 && found;
      });
      expect(rows.map((row) => row.killed)).toEqual([true]);
      // Let the client notice the dropped connection before the held write lets the prefetch go on.
      await waitFor("the dropped connection to be noticed", async () => {
        const { rows: left } = await testDatabase.db.pool.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'FETCH % FROM dbjobs_cache_prefetch'`,
        );
        return left.length === 0;
      });
    } finally {
      store.release();
      outcome = await prefetching.then(
        () => undefined,
        (err: unknown) => err,
      );
    }
    expect(outcome).toBeInstanceOf(SessionLostError);
    // A job that failed this way is retried by BullMQ, not failed for good.
    expect(toJobFailure(outcome)).toBe(outcome);

    const rerun = await runHandler("cache-prefetch", { kinds: ["escrowBalances"] }, { ...context, sharedCache: { redis, prefix: config.QUEUE_PREFIX } });
    expect(rerun.warmed.escrowBalances).toBe(20);
  });

  it("without a shared tier: fails the job retryably when the connection reading the hot set is dropped, and the next run reads it", async () => {
    const noSharedTier: JobContext = { ...context, sharedCache: undefined };
    const blocker = await testDatabase.db.pool.connect();
    let outcome: unknown;
    try {
      // The read waits on this lock, in flight on its connection, while the test kills that connection.
      await blocker.query(`BEGIN; LOCK TABLE "escrow_accounts" IN ACCESS EXCLUSIVE MODE`);
      const prefetching = runHandler("cache-prefetch", { kinds: ["escrowBalances"] }, noSharedTier);
      prefetching.catch(() => undefined);
      const { rows } = await waitFor("the prefetch's read to wait on the lock", async () => {
        const found = await testDatabase.db.pool.query<{ killed: boolean }>(
          `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM hot CROSS JOIN LATERAL%'`,
        );
        return found.rows.length > 0 && found;
      });
      expect(rows.map((row) => row.killed)).toEqual([true]);
      outcome = await prefetching.then(
        () => undefined,
        (err: unknown) => err,
      );
    } finally {
      await blocker.query("ROLLBACK");
      blocker.release();
    }
    expect((outcome as { code?: string }).code).toBe("57P01");
    expect(toJobFailure(outcome)).toBe(outcome);

    const rerun = await runHandler("cache-prefetch", { kinds: ["escrowBalances"] }, noSharedTier);
    expect(rerun).toMatchObject({ sharedTier: "none", read: { escrowBalances: 20 } });
  });
});
