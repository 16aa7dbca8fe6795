import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { cliEnv, runCli, spawnCli } from "./support/spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig, testDb, testRedis } from "./support/test-env.js";

describe("dbjobs enqueue cache-prefetch --wait", () => {
  let database: TestDatabase;
  let config: Config;
  const redis = testRedis();

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
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
    const keys = await redis.keys(`${config.QUEUE_PREFIX}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await database?.drop();
  });

  it("runs the job on a worker process and prints the counts it warmed", async () => {
    const worker = spawnCli(["worker", "cache-prefetch"], cliEnv(config));
    try {
      await worker.waitForOutput(/worker started/, 60_000);
      const run = await runCli(["enqueue", "cache-prefetch", "--wait", "--json", "--data", '{"limit":10}'], cliEnv(config), 90_000);
      expect(run.code).toBe(0);
      const printed = JSON.parse(run.stdout) as { state: string; result: { warmed: Record<string, number>; durationMs: number } };
      expect(printed.state).toBe("completed");
      expect(printed.result.warmed).toEqual({ escrowBalances: 10, activeUsers: 7, globalCounts: 1 });
      expect(printed.result.durationMs).toBeGreaterThanOrEqual(0);
      expect(await redis.keys(`${config.QUEUE_PREFIX}:cache:escrow:balance:*`)).toHaveLength(10);
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
  });
});
