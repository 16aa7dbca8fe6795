import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { cacheChildEnv, cacheSetups, cacheTestConfig } from "./support/cache-setups.js";
import { runCli, spawnCli } from "./support/spawn-cli.js";
import { createTestDatabase, deleteTestKeys, findTestKeys, type TestDatabase, testDb, testKeyPrefix, testRedisConnection } from "./support/test-env.js";

describe.each(cacheSetups())("dbjobs enqueue cache-prefetch --wait ($name)", (setup) => {
  let database: TestDatabase;
  let config: Config;
  const redis = testRedisConnection();

  beforeAll(async () => {
    database = await createTestDatabase();
    config = cacheTestConfig(database.url, setup);
    const db = testDb(database.url);
    try {
      await db.prisma.escrowAccount.createMany({
        data: Array.from({ length: 12 }, (_, index) => ({ accountNumber: `CLI-${index}`, currentBalance: "10.00" })),
      });
      await db.prisma.user.createMany({ data: Array.from({ length: 7 }, (_, index) => ({ email: `cli${index}@example.com`, lastActiveAt: new Date() })) });
    } finally {
      await db.close();
    }
  });

  afterAll(async () => {
    await deleteTestKeys(redis, `${testKeyPrefix(redis, config)}:*`);
    redis.disconnect();
    await database?.drop();
  });

  it("runs the job on a worker process and prints what it warmed, or that there is no shared tier to warm", async () => {
    const env = cacheChildEnv(config, { LOG_LEVEL: "info" });
    const worker = spawnCli(["worker", "cache-prefetch"], env);
    try {
      await worker.waitForOutput(/worker started/, 60_000);
      const run = await runCli(["enqueue", "cache-prefetch", "--wait", "--json", "--data", '{"limit":10}'], env, 90_000);
      expect(run.code, run.stderr).toBe(0);
      const printed = JSON.parse(run.stdout) as {
        state: string;
        result: { sharedTier: string; warmed: Record<string, number>; read: Record<string, number>; durationMs: number };
      };
      expect(printed.state).toBe("completed");
      expect(printed.result.read).toEqual({ escrowBalances: 10, activeUsers: 7, globalCounts: 1 });
      expect(printed.result.durationMs).toBeGreaterThanOrEqual(0);
      if (setup.withRedis) {
        expect(printed.result.sharedTier).toBe("redis");
        expect(printed.result.warmed).toEqual({ escrowBalances: 10, activeUsers: 7, globalCounts: 1 });
        expect(await findTestKeys(redis, `${testKeyPrefix(redis, config)}:cache:escrow:balance:*`)).toHaveLength(10);
      } else {
        expect(printed.result.sharedTier).toBe("none");
        expect(printed.result.warmed).toEqual({ escrowBalances: 0, activeUsers: 0, globalCounts: 0 });
        expect(await findTestKeys(redis, `${testKeyPrefix(redis, config)}:*`)).toEqual([]);
        await worker.waitForOutput(/no shared tier \(REDIS_URL unset\)/, 10_000);
      }
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
    // Two CLI processes, each compiling the sources through tsx: slow on a busy two-core machine.
  }, 180_000);
});
