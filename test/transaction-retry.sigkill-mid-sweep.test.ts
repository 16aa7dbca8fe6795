import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TransactionRetryResult } from "../src/jobs/transaction-retry/contract.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import type { AnyQueueEvents } from "../src/lib/queue-store.js";
import type { Producer } from "../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { checkLedger, createAccounts, createDueTransactions, statusCounts } from "./support/escrow-data.js";
import { openQueueClient, type QueueClient } from "./support/queue-client.js";
import { type CliRun, cliEnv, spawnCli } from "./support/spawn-cli.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";

const opening = "1000000.00";
const transactionCount = 1000;
const leaseMs = 2000;

describe("transaction-retry: a worker killed with SIGKILL mid-sweep, then a rerun", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let producer: Producer;
  let child: CliRun | undefined;
  let worker: RunningWorker | undefined;
  let events: AnyQueueEvents;
  let client: QueueClient;
  let accounts: string[];

  beforeAll(async () => {
    config = testConfig(testDatabase.url);
    db = testDatabase.db;
    accounts = await createAccounts(db.pool, 5, opening);
    await createDueTransactions(db.pool, accounts, transactionCount);
    client = await openQueueClient("transaction-retry", config);
    ({ producer, events } = client);
  });

  afterAll(async () => {
    if (child && child.child.exitCode === null && child.child.signalCode === null) child.child.kill("SIGKILL");
    await worker?.close();
    await client?.close();
  });

  it("leaves balances equal to the ledger at the kill and after the rerun, and settles every transaction exactly once", async () => {
    child = spawnCli(["worker", "transaction-retry", "--concurrency", "2"], cliEnv(config));
    await child.waitForOutput(/worker started/, 60_000);
    // Small pages and a short lease so the rerun can take over the dead worker's claims quickly.
    for (let index = 0; index < 4; index++) await producer.enqueue("transaction-retry", { limit: 1000, pageSize: 10, leaseMs });

    const ledgerCount = async () => Number((await db.pool.query(`SELECT count(*) AS n FROM "escrow_ledger_entries"`)).rows[0].n);
    const deadline = Date.now() + 90_000;
    while ((await ledgerCount()) < 150) {
      if (Date.now() > deadline) throw new Error(`the worker settled too little in 90 s:\n${child.stderr().slice(-3000)}`);
      await sleep(20);
    }
    child.child.kill("SIGKILL");
    expect((await child.exited).signal).toBe("SIGKILL");

    // At the kill: some settled, some not, and the books already balance.
    const atKill = await checkLedger(db.pool, accounts, opening);
    expect(atKill.problems).toEqual([]);
    expect(atKill.completed).toBeGreaterThanOrEqual(150);
    expect(atKill.completed).toBeLessThan(transactionCount);

    // Rerun: a fresh worker, once the dead worker's leases have run out.
    await sleep(leaseMs + 500);
    worker = await startWorker("transaction-retry", { config, logger: memoryLogger("warn").logger, concurrency: 2 });
    let rerunSettled = 0;
    for (let round = 0; round < 5 && (await statusCounts(db.pool)).COMPLETED !== transactionCount; round++) {
      const job = await producer.enqueue("transaction-retry", { limit: 10_000, leaseMs });
      rerunSettled += ((await waitForJob(job, events, 120_000)) as TransactionRetryResult).settled;
      await sleep(leaseMs);
    }

    const after = await checkLedger(db.pool, accounts, opening);
    expect(after.problems).toEqual([]);
    expect(await statusCounts(db.pool)).toEqual({ COMPLETED: transactionCount });
    expect(after.ledgerEntries).toBe(transactionCount);
    // The rerun settled what the dead worker had not: the sweeps still waiting
    // in the queue, then ours (the dead worker's own jobs come back as stalled).
    expect(rerunSettled).toBeLessThanOrEqual(transactionCount - atKill.completed);
  }, 300_000);
});
