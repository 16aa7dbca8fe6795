import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SettlementMode, transactionRetryPayload } from "../src/jobs/transaction-retry/contract.js";
import { sweepDueTransactions } from "../src/jobs/transaction-retry/handler.js";
import { settleTransaction } from "../src/jobs/transaction-retry/settlement.js";
import type { Db } from "../src/lib/db.js";
import { PayloadValidationError } from "../src/lib/errors.js";
import { flushMetrics, redisMetricsStore } from "../src/lib/metrics.js";
import { validatePayload } from "../src/queues/validate-payload.js";
import { checkLedger, createAccounts, insertTransaction, readAccount, readTransaction } from "./support/escrow-data.js";
import { readSeries } from "./support/metric-series.js";
import { sweepOptions } from "./support/sweep-options.js";
import { testPrefix, testRedis, useTestDb } from "./support/test-env.js";

/**
 * What one settlement does in each case, checked in the rows an operator
 * would look at: balances, the ledger, the transaction's status and lastError.
 * Each test leaves nothing due, so the next test's sweep sees only its own rows.
 */
describe("transaction-retry settlement outcomes", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let redis: Redis;
  const metricsPrefix = testPrefix();

  beforeAll(async () => {
    db = testDatabase.db;
    redis = testRedis();
  });

  afterAll(async () => {
    await redis?.del(`${metricsPrefix}:dbjobs:metrics`);
    redis?.disconnect();
  });

  it("credits deposits net of their fee and debits withdrawals, distributions, fees and refunds with theirs, one ledger entry each", async () => {
    const [account] = await createAccounts(db.pool, 1, "100.00");
    const specs = [
      { type: "DEPOSIT", amount: "50.00", feeAmount: "1.00", expected: "49.00" },
      { type: "WITHDRAWAL", amount: "10.00", feeAmount: "0.50", expected: "-10.50" },
      { type: "DISTRIBUTION", amount: "20.00", expected: "-20.00" },
      { type: "FEE", amount: "2.50", expected: "-2.50" },
      { type: "REFUND", amount: "5.00", expected: "-5.00" },
    ] as const;
    const ids = [];
    for (const spec of specs) ids.push((await insertTransaction(db.pool, { ...spec, escrowAccountId: account! })).id);

    const result = await sweepDueTransactions(db.prisma, sweepOptions());

    expect(result).toMatchObject({ settled: 5, failedForGood: 0, rescheduled: 0 });
    expect(await readAccount(db.pool, account!)).toEqual({ currentBalance: "111.00", availableBalance: "111.00", version: 5 });
    const { rows } = await db.pool.query<{ transactionId: string; amount: string }>(
      `SELECT "transactionId"::text AS "transactionId", "amount"::text AS "amount" FROM "escrow_ledger_entries" WHERE "escrowAccountId" = $1`,
      [account],
    );
    expect(new Map(rows.map((row) => [row.transactionId, row.amount]))).toEqual(new Map(ids.map((id, index) => [id, specs[index]!.expected])));
    expect((await checkLedger(db.pool, [account!], "100.00")).problems).toEqual([]);
    for (const id of ids)
      expect(await readTransaction(db.pool, id)).toMatchObject({ status: "COMPLETED", nextRetryAt: null, lastError: null, ledgerEntries: 1 });
  });

  it("ends a debit that availableBalance cannot cover (amount + fee) as FAILED 'insufficient funds', with no ledger entry and no retry", async () => {
    const [account] = await createAccounts(db.pool, 1, "10.00");
    const tooMuch = await insertTransaction(db.pool, { type: "WITHDRAWAL", amount: "9.80", feeAmount: "0.25", escrowAccountId: account! });
    const exact = await insertTransaction(db.pool, { type: "DISTRIBUTION", amount: "10.00", escrowAccountId: account! });

    const result = await sweepDueTransactions(db.prisma, sweepOptions());

    expect(result).toMatchObject({ settled: 1, failedForGood: 1, rescheduled: 0 });
    expect(await readTransaction(db.pool, tooMuch.id)).toEqual({
      status: "FAILED",
      retryCount: 0,
      nextRetryAt: null,
      lastError: "insufficient funds",
      ledgerEntries: 0,
    });
    expect(await readTransaction(db.pool, exact.id)).toMatchObject({ status: "COMPLETED", ledgerEntries: 1 });
    expect(await readAccount(db.pool, account!)).toMatchObject({ currentBalance: "0.00", availableBalance: "0.00", version: 1 });
    // FAILED for good is not due again: another sweep leaves it alone.
    expect(await sweepDueTransactions(db.prisma, sweepOptions())).toMatchObject({ settled: 0, failedForGood: 0, rescheduled: 0 });
  });

  it("fails for good what can never settle (bad amounts, a CLOSED or missing account) and reschedules what may later (a FROZEN account)", async () => {
    const [open, closed, frozen] = await createAccounts(db.pool, 3, "100.00");
    await db.pool.query(`UPDATE "escrow_accounts" SET "status" = 'CLOSED' WHERE "id" = $1`, [closed]);
    await db.pool.query(`UPDATE "escrow_accounts" SET "status" = 'FROZEN' WHERE "id" = $1`, [frozen]);
    const negative = await insertTransaction(db.pool, { type: "WITHDRAWAL", amount: "-5.00", escrowAccountId: open! });
    const feeOverDeposit = await insertTransaction(db.pool, { type: "DEPOSIT", amount: "1.00", feeAmount: "2.00", escrowAccountId: open! });
    const toClosed = await insertTransaction(db.pool, { type: "DEPOSIT", amount: "1.00", escrowAccountId: closed! });
    const noAccount = await insertTransaction(db.pool, { type: "DEPOSIT", amount: "1.00", escrowAccountId: null });
    const toFrozen = await insertTransaction(db.pool, { type: "DEPOSIT", amount: "1.00", escrowAccountId: frozen! });

    const result = await sweepDueTransactions(db.prisma, sweepOptions());

    expect(result).toMatchObject({ settled: 0, failedForGood: 4, rescheduled: 1 });
    expect(await readTransaction(db.pool, negative.id)).toMatchObject({ status: "FAILED", lastError: expect.stringMatching(/^invalid amount/) });
    expect(await readTransaction(db.pool, feeOverDeposit.id)).toMatchObject({ status: "FAILED", lastError: expect.stringMatching(/^invalid amount/) });
    expect(await readTransaction(db.pool, toClosed.id)).toMatchObject({ status: "FAILED", lastError: expect.stringMatching(/CLOSED/) });
    expect(await readTransaction(db.pool, noAccount.id)).toMatchObject({ status: "FAILED", lastError: expect.stringMatching(/^no escrow account/) });
    const waiting = await readTransaction(db.pool, toFrozen.id);
    expect(waiting).toMatchObject({ status: "RETRYING", retryCount: 1, lastError: expect.stringMatching(/FROZEN; set it ACTIVE/), ledgerEntries: 0 });
    expect(waiting.nextRetryAt!.getTime()).toBeGreaterThan(Date.now());
    for (const id of [open!, closed!, frozen!]) expect(await readAccount(db.pool, id)).toMatchObject({ currentBalance: "100.00", version: 0 });
    // Take it out of the next tests' way.
    await db.pool.query(`UPDATE "transactions" SET "status" = 'CANCELLED' WHERE "id" = $1`, [toFrozen.id]);
  });

  it.each<SettlementMode>(["serializable", "row-lock"])(
    "%s: an account update that matches no row (version moved) is a conflict: rolled back, retried, counted",
    async (mode) => {
      const [account] = await createAccounts(db.pool, 1, "100.00");
      const deposit = await insertTransaction(db.pool, { type: "DEPOSIT", amount: "7.00", escrowAccountId: account! });
      // The next two UPDATEs of escrow_accounts touch no row, as if another writer had bumped the version.
      await db.pool.query(`
      CREATE SEQUENCE skip_account_updates;
      CREATE FUNCTION skip_account_update() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF nextval('skip_account_updates') <= 2 THEN RETURN NULL; END IF; RETURN NEW; END $$;
      CREATE TRIGGER skip_account_update BEFORE UPDATE ON "escrow_accounts" FOR EACH ROW EXECUTE FUNCTION skip_account_update();`);
      try {
        const result = await sweepDueTransactions(db.prisma, sweepOptions({ mode }));
        expect(result).toMatchObject({ settled: 1, conflictsRetried: 2, rescheduled: 0 });
      } finally {
        await db.pool.query(`DROP TRIGGER skip_account_update ON "escrow_accounts"; DROP FUNCTION skip_account_update(); DROP SEQUENCE skip_account_updates;`);
      }
      expect(await readTransaction(db.pool, deposit.id)).toMatchObject({ status: "COMPLETED", ledgerEntries: 1 });
      expect(await readAccount(db.pool, account!)).toEqual({ currentBalance: "107.00", availableBalance: "107.00", version: 1 });
    },
  );

  it.each<SettlementMode>(["serializable", "row-lock"])("%s: two settlers racing for the same transactions settle each exactly once", async (mode) => {
    const [account] = await createAccounts(db.pool, 1, "1000.00");
    const rows = [];
    for (let index = 0; index < 20; index++) {
      rows.push(await insertTransaction(db.pool, { type: index % 2 ? "DEPOSIT" : "WITHDRAWAL", amount: `${index + 1}.00`, escrowAccountId: account! }));
    }
    const outcomes = await Promise.all(
      rows.flatMap(({ id, createdAt }) =>
        [1, 2].map(() => settleTransaction(db.prisma, id, createdAt, { mode, conflictRetry: { maxAttempts: 50, baseDelayMs: 2 } })),
      ),
    );
    expect(outcomes.filter((outcome) => outcome.kind === "settled")).toHaveLength(20);
    expect(outcomes.filter((outcome) => outcome.kind === "skipped")).toHaveLength(20);
    // And once more, as a job rerun after a crash right after its commits would.
    for (const { id, createdAt } of rows) expect(await settleTransaction(db.prisma, id, createdAt, { mode })).toEqual({ kind: "skipped", status: "COMPLETED" });
    expect(await readAccount(db.pool, account!)).toMatchObject({ currentBalance: "1010.00", version: 20 });
    expect((await checkLedger(db.pool, [account!], "1000.00")).problems).toEqual([]);
  });

  it("reschedules a transient failure with growing jittered delays and lastError, then fails it for good after the last attempt and counts it", async () => {
    const [account, other] = await createAccounts(db.pool, 2, "100.00");
    const doomed = await insertTransaction(db.pool, { type: "DEPOSIT", amount: "3.00", escrowAccountId: account! });
    const fine = await insertTransaction(db.pool, { type: "DEPOSIT", amount: "4.00", escrowAccountId: other! });
    // Every ledger insert for `doomed` fails the way a dropped connection does (SQLSTATE 08006).
    await db.pool.query(`
      CREATE FUNCTION refuse_ledger_insert() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW."transactionId" = '${doomed.id}' THEN RAISE EXCEPTION 'simulated outage' USING ERRCODE = '08006'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER refuse_ledger_insert BEFORE INSERT ON "escrow_ledger_entries" FOR EACH ROW EXECUTE FUNCTION refuse_ledger_insert();`);
    const makeDue = () => db.pool.query(`UPDATE "transactions" SET "nextRetryAt" = now() - interval '1 second' WHERE "id" = $1`, [doomed.id]);
    try {
      const first = await sweepDueTransactions(db.prisma, sweepOptions({ maxAttempts: 3 }));
      expect(first).toMatchObject({ settled: 1, rescheduled: 1, failedForGood: 0 });
      const afterFirst = await readTransaction(db.pool, doomed.id);
      expect(afterFirst).toMatchObject({ status: "RETRYING", retryCount: 1, lastError: expect.stringMatching(/simulated outage/), ledgerEntries: 0 });
      // Attempt 1's delay is jittered within [15 s, 30 s] (base 30 s, equal jitter).
      const firstDelay = afterFirst.nextRetryAt!.getTime() - Date.now();
      expect(firstDelay).toBeGreaterThan(10_000);
      expect(firstDelay).toBeLessThanOrEqual(30_000);
      expect(await readTransaction(db.pool, fine.id)).toMatchObject({ status: "COMPLETED" });

      // Not due yet: a sweep now leaves it alone.
      expect(await sweepDueTransactions(db.prisma, sweepOptions({ maxAttempts: 3 }))).toMatchObject({ settled: 0, rescheduled: 0 });

      await makeDue();
      expect(await sweepDueTransactions(db.prisma, sweepOptions({ maxAttempts: 3 }))).toMatchObject({ rescheduled: 1 });
      const afterSecond = await readTransaction(db.pool, doomed.id);
      expect(afterSecond).toMatchObject({ status: "RETRYING", retryCount: 2 });
      const secondDelay = afterSecond.nextRetryAt!.getTime() - Date.now();
      expect(secondDelay).toBeGreaterThan(25_000);
      expect(secondDelay).toBeLessThanOrEqual(60_000);

      await makeDue();
      expect(await sweepDueTransactions(db.prisma, sweepOptions({ maxAttempts: 3 }))).toMatchObject({ rescheduled: 0, failedForGood: 1 });
      expect(await readTransaction(db.pool, doomed.id)).toMatchObject({
        status: "FAILED",
        retryCount: 3,
        nextRetryAt: null,
        lastError: expect.stringMatching(/simulated outage/),
        ledgerEntries: 0,
      });
    } finally {
      await db.pool.query(`DROP TRIGGER refuse_ledger_insert ON "escrow_ledger_entries"; DROP FUNCTION refuse_ledger_insert();`);
    }
    expect(await readAccount(db.pool, account!)).toMatchObject({ currentBalance: "100.00", version: 0 });

    await flushMetrics(redisMetricsStore(redis, metricsPrefix));
    const metrics = await readSeries(redisMetricsStore(redis, metricsPrefix));
    expect(metrics.get('dbjobs_transactions_failed_for_good_total{reason="attempts_exhausted"}')).toBe(1);
    expect(metrics.get('dbjobs_transactions_failed_for_good_total{reason="insufficient_funds"}')).toBe(1);
  });

  it("rejects a bad payload naming each bad field", () => {
    expect(() => validatePayload("transaction-retry", transactionRetryPayload, { limit: 0, mode: "optimistic", extra: 1 })).toThrow(PayloadValidationError);
    let rejected: unknown;
    try {
      validatePayload("transaction-retry", transactionRetryPayload, { limit: 0, mode: "optimistic" });
    } catch (err) {
      rejected = err;
    }
    // Fails when the payload is accepted: nothing was thrown.
    expect(rejected).toBeInstanceOf(PayloadValidationError);
    expect((rejected as PayloadValidationError).fields.map((field) => field.path).sort()).toEqual(["limit", "mode"]);
    // An empty payload is valid, and the job runs with the contract's defaults.
    expect(validatePayload("transaction-retry", transactionRetryPayload, {})).toEqual({ limit: 500, pageSize: 50, leaseMs: 300_000, mode: "row-lock" });
  });
});
