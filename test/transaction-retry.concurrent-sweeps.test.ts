import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheKeyPrefix } from "../src/cache/cache-invalidation.js";
import { cacheKeys } from "../src/cache/cache-keys.js";
import type { SettlementMode, TransactionRetryResult } from "../src/jobs/transaction-retry/contract.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import type { AnyQueueEvents } from "../src/lib/queue-store.js";
import type { Producer } from "../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { checkLedger, createAccounts, createDueTransactions, statusCounts } from "./support/escrow-data.js";
import { openQueueClient, type QueueClient } from "./support/queue-client.js";
import { memoryLogger, testConfig, testRedis, useTestDb } from "./support/test-env.js";

const opening = "1000000.00";
const transactionCount = 2000;

/**
 * 2,000 due transactions over 5 escrow accounts, settled by 4 sweeps at once
 * on 2 worker processes' worth of workers (2 × concurrency 2), each with its own
 * connection pool: real contention on five account rows.
 */
describe.each<SettlementMode>(["serializable", "row-lock"])("transaction-retry: 4 concurrent sweeps, %s settlement", (mode) => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let producer: Producer;
  let workers: RunningWorker[] = [];
  let events: AnyQueueEvents;
  let client: QueueClient;
  let redis: Redis;
  let accounts: string[];

  beforeAll(async () => {
    config = testConfig(testDatabase.url, { DB_POOL_SIZE: "4" });
    db = testDatabase.db;
    accounts = await createAccounts(db.pool, 5, opening);
    await createDueTransactions(db.pool, accounts, transactionCount);
    client = await openQueueClient("transaction-retry", config);
    ({ producer, events } = client);
    redis = testRedis();
    // Each startWorker without `db` opens its own pool, like a separate process.
    workers = await Promise.all([1, 2].map(() => startWorker("transaction-retry", { config, logger: memoryLogger("warn").logger, concurrency: 2 })));
  });

  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.close()));
    await client?.close();
    redis?.disconnect();
  });

  it("settles every transaction exactly once, keeps every balance equal to its ledger, and reports the conflicts it retried", async () => {
    // Stale cached balances, as a reader would have left them: the sweeps must drop them.
    const cachedBalanceKeys = accounts.map((account) => cacheKeyPrefix(config.QUEUE_PREFIX) + cacheKeys.escrowBalance(account));
    for (const key of cachedBalanceKeys) await redis.set(key, "stale", "PX", 600_000);

    const jobs = await Promise.all([1, 2, 3, 4].map(() => producer.enqueue("transaction-retry", { limit: 1000, pageSize: 20, mode })));
    const results = (await Promise.all(jobs.map((job) => waitForJob(job, events, 180_000)))) as TransactionRetryResult[];
    const total = results.reduce(
      (sum, result) => ({
        settled: sum.settled + result.settled,
        failedForGood: sum.failedForGood + result.failedForGood,
        rescheduled: sum.rescheduled + result.rescheduled,
        conflictsRetried: sum.conflictsRetried + result.conflictsRetried,
      }),
      { settled: 0, failedForGood: 0, rescheduled: 0, conflictsRetried: 0 },
    );
    console.info(`[${mode}] 4 sweeps: ${JSON.stringify(total)}; per sweep settled ${results.map((result) => result.settled).join("/")}`);

    // All four sweeps did work: the claims really ran side by side.
    expect(results.filter((result) => result.settled > 0).length).toBeGreaterThanOrEqual(2);
    expect(total.settled + total.failedForGood + total.rescheduled).toBe(transactionCount);
    expect(total.failedForGood).toBe(0);
    if (mode === "serializable") expect(total.conflictsRetried).toBeGreaterThan(0);

    const check = await checkLedger(db.pool, accounts, opening);
    expect(check.problems).toEqual([]);
    expect(check.completed).toBe(total.settled);
    expect(check.ledgerEntries).toBe(total.settled);
    const statuses = await statusCounts(db.pool);
    expect(statuses.COMPLETED).toBe(total.settled);
    // Anything not settled was given a later attempt, not lost.
    expect(statuses.RETRYING ?? 0).toBe(total.rescheduled);
    expect(await redis.exists(...cachedBalanceKeys)).toBe(0);
  }, 240_000);

  it("a second round of sweeps finds nothing due and changes nothing", async () => {
    const before = await db.pool.query(`SELECT "id", "currentBalance"::text, "version" FROM "escrow_accounts" ORDER BY "id"`);
    const job = await producer.enqueue("transaction-retry", { mode });
    const result = (await waitForJob(job, events, 60_000)) as TransactionRetryResult;
    expect(result).toMatchObject({ settled: 0, failedForGood: 0, conflictsRetried: 0 });
    const after = await db.pool.query(`SELECT "id", "currentBalance"::text, "version" FROM "escrow_accounts" ORDER BY "id"`);
    expect(after.rows).toEqual(before.rows);
  }, 120_000);
});
