import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createInterface, type Interface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCache, type TwoTierCache } from "../src/cache/cache.js";
import { invalidateCacheKeys } from "../src/cache/cache-invalidation.js";
import { cacheKeys } from "../src/cache/cache-keys.js";
import { loadEscrowBalance } from "../src/jobs/cache-prefetch/cache-entities.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { packageRoot } from "../src/lib/paths.js";
import { memoryLogger, testConfig, testRedis, useTestDb } from "./support/test-env.js";

/** Process B: a child process with its own cache, connections and pool (test/support/cache-reader-child.ts). */
class ReaderProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly queue: ((line: string) => void)[] = [];
  readonly ready: Promise<void>;

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, ["--import", "tsx", "test/support/cache-reader-child.ts"], { cwd: packageRoot, env: { ...process.env, ...env } });
    this.child.stderr.on("data", (chunk) => process.stderr.write(chunk));
    this.lines = createInterface({ input: this.child.stdout });
    this.lines.on("line", (line) => this.queue.shift()?.(line));
    this.ready = new Promise((resolve) => this.queue.push(() => resolve()));
  }

  read(id: string): Promise<{ currentBalance: string; stats: { l1Hits: number; l2Hits: number; loads: number } }> {
    return new Promise((resolve) => {
      this.queue.push((line) => resolve(JSON.parse(line)));
      this.child.stdin.write(`${JSON.stringify({ id })}\n`);
    });
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

describe("invalidation across processes", () => {
  const testDatabase = useTestDb();
  let config: Config;
  let db: Db;
  let cacheA: TwoTierCache;
  let processB: ReaderProcess;
  const redis = testRedis();
  let accountId: string;

  beforeAll(async () => {
    // Long TTLs: only an invalidation can explain B seeing a new value.
    const ttl = { CACHE_TTL_BALANCE_MS: "600000" };
    config = testConfig(testDatabase.url, ttl);
    db = testDatabase.db;
    const account = await db.prisma.escrowAccount.create({ data: { accountNumber: "ESC-1", currentBalance: "100.00" } });
    accountId = account.id;
    cacheA = await createCache({ redis: config.REDIS_URL, prefix: config.QUEUE_PREFIX, config, logger: memoryLogger("warn").logger });
    processB = new ReaderProcess({ DATABASE_URL: testDatabase.url, REDIS_URL: config.REDIS_URL, QUEUE_PREFIX: config.QUEUE_PREFIX, LOG_LEVEL: "warn", ...ttl });
    await processB.ready;
  });

  afterAll(async () => {
    await processB?.stop();
    await cacheA?.close();
    const keys = await redis.keys(`${config.QUEUE_PREFIX}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  const setBalance = (amount: string) =>
    db.prisma.escrowAccount.update({ where: { id: accountId }, data: { currentBalance: amount, version: { increment: 1 } } });

  /** Reads in B until it shows `expected`; returns how long that took after the invalidation. */
  async function timeUntilBSees(expected: string, since: number): Promise<number> {
    for (;;) {
      const { currentBalance } = await processB.read(accountId);
      if (currentBalance === expected) return performance.now() - since;
      if (performance.now() - since > 10_000) throw new Error(`process B still shows ${currentBalance}, expected ${expected}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  it("drops a key from process B's memory when process A invalidates it", async () => {
    const key = cacheKeys.escrowBalance(accountId);
    expect((await processB.read(accountId)).currentBalance).toBe("100.00");
    const second = await processB.read(accountId);
    expect(second.currentBalance).toBe("100.00");
    expect(second.stats.l1Hits).toBe(1);

    // Without an invalidation B keeps serving what it holds in memory.
    await setBalance("250.00");
    expect((await processB.read(accountId)).currentBalance).toBe("100.00");

    const started = performance.now();
    await cacheA.invalidate([key]);
    const elapsedMs = await timeUntilBSees("250.00", started);
    process.stderr.write(`process B saw process A's invalidation after ${elapsedMs.toFixed(1)} ms\n`);
    // Reads from A now also see the new balance (A loads it, B's copy is independent).
    const fromA = await cacheA.getOrLoad(key, () => loadEscrowBalance(db, accountId), { kind: "balance" });
    expect(fromA?.currentBalance.toFixed(2)).toBe("250.00");
  });

  it("drops it when a job invalidates through ctx.invalidateCache (the worker's plain connection)", async () => {
    expect((await processB.read(accountId)).currentBalance).toBe("250.00");
    await setBalance("300.00");
    const workerConnection = testRedis();
    try {
      const started = performance.now();
      await invalidateCacheKeys(workerConnection, config.QUEUE_PREFIX, [cacheKeys.escrowBalance(accountId)]);
      const elapsedMs = await timeUntilBSees("300.00", started);
      process.stderr.write(`process B saw a job's invalidation after ${elapsedMs.toFixed(1)} ms\n`);
      expect(await redis.exists(`${config.QUEUE_PREFIX}:cache:${cacheKeys.escrowBalance(accountId)}`)).toBe(1); // B re-cached the new value
      const fromA = await cacheA.getOrLoad(cacheKeys.escrowBalance(accountId), () => loadEscrowBalance(db, accountId), { kind: "balance" });
      expect(fromA?.currentBalance.toFixed(2)).toBe("300.00");
    } finally {
      workerConnection.disconnect();
    }
  });
});
