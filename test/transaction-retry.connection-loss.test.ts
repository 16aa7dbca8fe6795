import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TransactionRetryResult as SweepResult } from "../src/jobs/transaction-retry/contract.js";
import { sweepDueTransactions } from "../src/jobs/transaction-retry/handler.js";
import { createDb, type Db } from "../src/lib/db.js";
import { checkLedger, createAccounts, createDueTransactions, statusCounts } from "./support/escrow-data.js";
import { sweepOptions } from "./support/sweep-options.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testDb } from "./support/test-env.js";

const opening = "100000.00";
const transactionCount = 300;

/**
 * PostgreSQL drops the sweep's connections (pg_terminate_backend, as a
 * failover or an idle-session killer would) again and again while it settles.
 * Whatever the sweep managed, the books must balance, and nothing may be lost:
 * every transaction ends COMPLETED, or waits for its next attempt.
 */
describe("transaction-retry when PostgreSQL drops the sweep's connections", () => {
  let database: TestDatabase;
  let admin: Db;
  let sweeper: Db;
  let accounts: string[];

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = testDb(database.url);
    sweeper = createDb({ url: database.url, poolSize: 3, logger: memoryLogger("fatal").logger, applicationName: "dbjobs:test-sweeper" });
    accounts = await createAccounts(admin.pool, 5, opening);
    await createDueTransactions(admin.pool, accounts, transactionCount);
  });

  afterAll(async () => {
    await sweeper?.close();
    await admin?.close();
    await database?.drop();
  });

  it("keeps every balance equal to its ledger, reschedules what a dropped connection interrupted, and settles it on a later attempt", async () => {
    let sweepsDone = false;
    const results: SweepResult[] = [];
    const errors: unknown[] = [];
    const sweeping = (async () => {
      // A sweep that loses its connection mid-claim fails as a whole (BullMQ
      // would retry the job); keep sweeping the way the schedule would.
      for (let round = 0; round < 30; round++) {
        try {
          const result = await sweepDueTransactions(
            sweeper.prisma,
            sweepOptions({
              limit: 100,
              pageSize: 10,
              leaseMs: 1000,
              retryBackoff: { baseDelayMs: 1, maxDelayMs: 1 },
            }),
          );
          results.push(result);
          if (result.settled + result.rescheduled + result.failedForGood === 0 && (await statusCounts(admin.pool)).COMPLETED === transactionCount) break;
        } catch (err) {
          errors.push(err);
          await sleep(1100);
        }
      }
      sweepsDone = true;
    })();

    let terminated = 0;
    for (let kill = 0; kill < 12 && !sweepsDone; kill++) {
      await sleep(150);
      const { rows } = await admin.pool.query<{ n: number }>(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'dbjobs:test-sweeper' AND pid <> pg_backend_pid()`,
      );
      terminated += rows[0]?.n ?? 0;
    }
    await sweeping;

    expect(terminated).toBeGreaterThan(0);
    const rescheduled = results.reduce((sum, result) => sum + result.rescheduled, 0);
    console.info(`terminated ${terminated} connections; ${errors.length} sweeps failed outright; ${rescheduled} settlements rescheduled`);
    // The drops really hit settlements or claims.
    expect(errors.length + rescheduled).toBeGreaterThan(0);

    const check = await checkLedger(admin.pool, accounts, opening);
    expect(check.problems).toEqual([]);
    const statuses = await statusCounts(admin.pool);
    expect(statuses.FAILED ?? 0).toBe(0);
    // With the drops over, the sweeps above went on until every transaction settled.
    expect(statuses).toEqual({ COMPLETED: transactionCount });
    expect(check.ledgerEntries).toBe(transactionCount);
    if (rescheduled > 0) {
      const { rows } = await admin.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "transactions" WHERE "status" = 'COMPLETED' AND "retryCount" > 0`);
      expect(rows[0]?.n).toBeGreaterThan(0);
    }
  }, 240_000);
});
