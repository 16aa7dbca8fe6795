import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FailedTransactionsData, failedTransactionsSection } from "../src/db-report/failed-transactions.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { Producer } from "../src/queues/producer.js";
import { createAccounts, createDueTransactions, insertTransaction } from "./support/escrow-data.js";
import { type CliRun, cliEnv, runCli, spawnCli } from "./support/spawn-cli.js";
import { testConfig, useTestDb } from "./support/test-env.js";

describe("dbjobs enqueue transaction-retry --wait, with a worker process", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let worker: CliRun | undefined;

  beforeAll(async () => {
    config = testConfig(testDatabase.url);
    db = testDatabase.db;
  });

  afterAll(async () => {
    if (worker && worker.child.exitCode === null && worker.child.signalCode === null) {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
    const producer = Producer.fromConfig(config);
    await (await producer.queue("transaction-retry")).obliterate({ force: true });
    await producer.close();
  });

  it("prints the sweep's counts, and the operator's db report shows what FAILED for good", async () => {
    const accounts = await createAccounts(db.pool, 3, "50000.00");
    await createDueTransactions(db.pool, accounts, 40);
    const [poor] = await createAccounts(db.pool, 1, "5.00");
    const overdrawn = await insertTransaction(db.pool, { type: "WITHDRAWAL", amount: "5.00", feeAmount: "0.01", escrowAccountId: poor! });

    worker = spawnCli(["worker", "transaction-retry"], cliEnv(config));
    await worker.waitForOutput(/worker started/, 60_000);

    const run = await runCli(["enqueue", "transaction-retry", "--data", '{"limit":100}', "--wait", "--json"], cliEnv(config), 120_000);
    expect(run.code, run.stderr).toBe(0);
    const printed = JSON.parse(run.stdout) as { state: string; result: Record<string, number> };
    expect(printed.state).toBe("completed");
    expect(printed.result).toMatchObject({ settled: 40, failedForGood: 1, rescheduled: 0, conflictsRetried: 0 });

    const report = await runCli(["db", "report", "--json"], cliEnv(config), 60_000);
    expect(report.code, report.stderr).toBe(0);
    const failed = (JSON.parse(report.stdout) as { failedTransactions: { total: number; recent: { id: string; lastError: string }[] } }).failedTransactions;
    expect(failed.total).toBe(1);
    expect(failed.recent).toEqual([expect.objectContaining({ id: overdrawn.id, lastError: "insufficient funds" })]);

    expect(failedTransactionsSection.render(failed as FailedTransactionsData)).toMatch(/1 transaction\(s\) FAILED for good[\s\S]*insufficient funds/);
  }, 180_000);
});
