import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createInterface, type Interface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCache, type TwoTierCache } from "../src/cache/cache.js";
import { invalidateCacheKeys } from "../src/cache/cache-invalidation.js";
import { cacheKeys } from "../src/cache/cache-keys.js";
import { type CacheInvalidator, createCacheInvalidator } from "../src/cache/invalidator.js";
import { loadEscrowBalance } from "../src/jobs/cache-prefetch/cache-entities.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { packageRoot } from "../src/lib/paths.js";
import { cacheChildEnv, cacheOptionsFrom, cacheSetups, cacheTestConfig } from "./support/cache-setups.js";
import { deleteTestKeys, memoryLogger, testKeyPrefix, testRedisConnection, useTestDb } from "./support/test-env.js";

interface Read {
  currentBalance: string;
  stats: { l1Hits: number; l2Hits: number; loads: number };
  via: "redis" | "postgres";
}

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

  read(id: string): Promise<Read> {
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

describe.each(cacheSetups())("invalidation across processes ($name)", (setup) => {
  const testDatabase = useTestDb();
  let config: Config;
  let db: Db;
  let cacheA: TwoTierCache;
  /** Resolves the next time an invalidation message reaches process A. */
  let heardInA: (() => void) | undefined;
  /** What a worker's jobs invalidate through (`ctx.invalidateCache`), built as startWorker builds it. */
  let jobInvalidator: CacheInvalidator;
  let processB: ReaderProcess;
  const redis = testRedisConnection();
  let accountId: string;

  beforeAll(async () => {
    // Long TTLs: only an invalidation can explain B seeing a new value.
    const ttl = { CACHE_TTL_BALANCE_MS: "600000" };
    config = cacheTestConfig(testDatabase.url, setup, ttl);
    db = testDatabase.db;
    const account = await db.prisma.escrowAccount.create({ data: { accountNumber: "ESC-1", currentBalance: "100.00" } });
    accountId = account.id;
    const logger = memoryLogger("warn").logger;
    cacheA = await createCache(cacheOptionsFrom(config, logger, { onInvalidation: () => heardInA?.() }));
    jobInvalidator = createCacheInvalidator({ config, prefix: config.QUEUE_PREFIX, redis: undefined, db, logger });
    processB = new ReaderProcess(cacheChildEnv(config, ttl));
    await processB.ready;
  });

  afterAll(async () => {
    await processB?.stop();
    await jobInvalidator?.close();
    await cacheA?.close();
    await deleteTestKeys(redis, `${testKeyPrefix(redis, config)}:*`);
    redis.disconnect();
  });

  const key = () => cacheKeys.escrowBalance(accountId);
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

  /** B keeps serving `held` from memory while the database says otherwise: only an invalidation will change that. */
  async function expectBHolds(held: string): Promise<void> {
    const read = await processB.read(accountId);
    expect(read.currentBalance).toBe(held);
  }

  it("drops a key from process B's memory when process A invalidates it", async () => {
    const first = await processB.read(accountId);
    expect(first.currentBalance).toBe("100.00");
    expect(first.via).toBe(setup.withRedis ? "redis" : "postgres");
    const second = await processB.read(accountId);
    expect(second.currentBalance).toBe("100.00");
    expect(second.stats.l1Hits).toBe(1);

    // Without an invalidation B keeps serving what it holds in memory.
    await setBalance("250.00");
    await expectBHolds("100.00");

    const started = performance.now();
    await cacheA.invalidate([key()]);
    const elapsedMs = await timeUntilBSees("250.00", started);
    process.stderr.write(`[${setup.name}] process B saw process A's invalidation after ${elapsedMs.toFixed(1)} ms\n`);
    const fromA = await cacheA.getOrLoad(key(), () => loadEscrowBalance(db, accountId), { kind: "balance" });
    expect(fromA?.currentBalance.toFixed(2)).toBe("250.00");
  });

  it("drops it when a job invalidates through ctx.invalidateCache", async () => {
    await expectBHolds("250.00");
    await setBalance("300.00");
    await expectBHolds("250.00");
    const started = performance.now();
    await jobInvalidator.invalidate([key()]);
    const elapsedMs = await timeUntilBSees("300.00", started);
    process.stderr.write(`[${setup.name}] process B saw a job's invalidation after ${elapsedMs.toFixed(1)} ms\n`);
    if (setup.withRedis) expect(await redis.exists(`${testKeyPrefix(redis, config)}:cache:${key()}`)).toBe(1); // B re-cached the new value in Redis
    // A's own memory was reached too, by the same channel.
    const fromA = await cacheA.getOrLoad(key(), () => loadEscrowBalance(db, accountId), { kind: "balance" });
    expect(fromA?.currentBalance.toFixed(2)).toBe("300.00");
  });

  it("drops it when an application calls invalidateCacheKeys", async () => {
    await expectBHolds("300.00");
    if (setup.withRedis) {
      await setBalance("350.00");
      await invalidateCacheKeys(redis, config.QUEUE_PREFIX, [key()]);
      await timeUntilBSees("350.00", performance.now());
      return;
    }
    // Without Redis, in the writing transaction itself: a rollback invalidates nothing...
    await db.prisma
      .$transaction(async (tx) => {
        await tx.escrowAccount.update({ where: { id: accountId }, data: { currentBalance: "999.00" } });
        await invalidateCacheKeys(tx, config.QUEUE_PREFIX, [key()]);
        throw new Error("roll back");
      })
      .catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await expectBHolds("300.00");
    // ...and a commit delivers it once the new balance is visible.
    await setBalance("340.00"); // changed outside the cache's knowledge: B still holds 300.00
    await expectBHolds("300.00");
    const started = performance.now();
    await db.prisma.$transaction(async (tx) => {
      await tx.escrowAccount.update({ where: { id: accountId }, data: { currentBalance: "350.00" } });
      await invalidateCacheKeys(tx, config.QUEUE_PREFIX, [key()]);
    });
    const elapsedMs = await timeUntilBSees("350.00", started);
    process.stderr.write(`[${setup.name}] process B saw an application's transactional invalidation after ${elapsedMs.toFixed(1)} ms\n`);
    // A plain pg connection works as well.
    await setBalance("360.00");
    await invalidateCacheKeys(db.pool, config.QUEUE_PREFIX, [key()]);
    await timeUntilBSees("360.00", performance.now());
  });

  it("does not keep a load in process A's memory when another process's invalidation overtakes it", async () => {
    await cacheA.invalidate([key()]);
    await setBalance("400.00");
    const heard = new Promise<void>((resolve) => {
      heardInA = resolve;
    });
    const old = await cacheA.getOrLoad(
      key(),
      async () => {
        const before = await loadEscrowBalance(db, accountId);
        // A job writes and invalidates while this load is in flight, and A hears of it before the load returns.
        await setBalance("450.00");
        await jobInvalidator.invalidate([key()]);
        await heard;
        return before;
      },
      { kind: "balance" },
    );
    heardInA = undefined;
    // The callers of the overtaken load get what it read...
    expect(old?.currentBalance.toFixed(2)).toBe("400.00");
    // ...but it was not kept: the next read loads the new balance.
    const fresh = await cacheA.getOrLoad(key(), () => loadEscrowBalance(db, accountId), { kind: "balance" });
    expect(fresh?.currentBalance.toFixed(2)).toBe("450.00");
    if (setup.withRedis) expect(await redis.exists(`${testKeyPrefix(redis, config)}:cache:${key()}`)).toBe(1);
  });
});
