import { expect } from "vitest";
import type { TransactionRetryResult } from "../src/jobs/transaction-retry/contract.js";
import { checkLedger, createAccounts, createDueTransactions, statusCounts } from "./support/escrow-data.js";
import { type FaultWorld, faultMatrix } from "./support/fault-matrix.js";

/**
 * transaction-retry under the fault matrix: one sweep settles 1,000 due
 * escrow transactions in pages of 10, so each fault lands between and inside
 * settlements. Leases are short (2 s) so a retried sweep can take over the
 * claims of the attempt the fault ended. Check: balances equal the ledger,
 * the ledger is an unbroken chain, every transaction settled at most once, and
 * only a settlement a fault cut short is left RETRYING (rolled back whole).
 */
const opening = "1000000.00";
const transactions = 1000;

interface State {
  accounts: string[];
  settledAtFirstFault: number;
}

const ledgerEntries = async (world: FaultWorld) =>
  (await world.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "escrow_ledger_entries"`)).rows[0]?.n ?? 0;

faultMatrix<State>({
  queue: "transaction-retry",
  async prepare(world) {
    const accounts = await createAccounts(world.db.pool, 5, opening);
    await createDueTransactions(world.db.pool, accounts, transactions);
    return { accounts, settledAtFirstFault: 0 };
  },
  enqueue: (world) => world.producer.enqueue("transaction-retry", { limit: transactions, pageSize: 10, leaseMs: 2000 }),
  async midWork(world, state, nth) {
    const settled = await ledgerEntries(world);
    if (nth === 1 && settled >= 100) {
      state.settledAtFirstFault = settled;
      return true;
    }
    return nth === 2 && settled >= state.settledAtFirstFault + 100;
  },
  async verify(world, state, job) {
    const ledger = await checkLedger(world.db.pool, state.accounts, opening);
    expect(ledger.problems).toEqual([]);
    // A settlement the fault cut short is rolled back and left RETRYING for a later sweep, never half-applied.
    const statuses = await statusCounts(world.db.pool);
    expect(Object.keys(statuses).filter((status) => status !== "COMPLETED" && status !== "RETRYING")).toEqual([]);
    expect((statuses.COMPLETED ?? 0) + (statuses.RETRYING ?? 0)).toBe(transactions);
    expect(statuses.COMPLETED).toBeGreaterThanOrEqual(transactions - 2);
    expect(ledger.ledgerEntries).toBe(statuses.COMPLETED);
    // The attempt that completed settled what the earlier ones had not.
    expect((job.returnvalue as TransactionRetryResult).settled).toBeLessThanOrEqual(transactions);
  },
});
