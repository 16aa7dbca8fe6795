import { z } from "zod";
import { defineContract } from "../../queues/contract.js";

/**
 * - `serializable`: Serializable isolation, no explicit locks; concurrent
 *   settlements of one account conflict and are retried.
 * - `row-lock`: the account row is locked (FOR UPDATE) before it is read.
 */
export const settlementModes = ["serializable", "row-lock"] as const;
export type SettlementMode = (typeof settlementModes)[number];

/**
 * Chosen by `npm run bench` (bench/transaction-retry.ts): under contention on a
 * few accounts, waiting on a row lock costs less than aborting and rerunning a
 * Serializable transaction, and both keep the ledger invariants. See docs/design.md.
 */
export const defaultSettlementMode: SettlementMode = "row-lock";

export interface TransactionRetryResult {
  settled: number;
  failedForGood: number;
  rescheduled: number;
  conflictsRetried: number;
  /** Claimed rows another settler had already ended (settled, failed or cancelled). */
  skipped: number;
}

export const transactionRetryPayload = z
  .object({
    /** Transactions this sweep claims at most. @defaultValue 500 */
    limit: z.number().int().min(1).max(10_000).default(500),
    /** Transactions claimed per statement. @defaultValue 50 */
    pageSize: z.number().int().min(1).max(1000).default(50),
    /** How long a claim keeps other sweeps off a row; a dead sweep's rows come back after it. @defaultValue 300000 */
    leaseMs: z.number().int().min(1000).max(86_400_000).default(300_000),
    /** Settlement design; see docs/jobs.md. @defaultValue "row-lock" */
    mode: z.enum(settlementModes).default(defaultSettlementMode),
  })
  .strict();

export type TransactionRetryPayload = z.output<typeof transactionRetryPayload>;

// Two sweeps may overlap (a slow sweep and the next minute's); their claims are disjoint.
export const transactionRetryContract = defineContract<TransactionRetryResult>()({
  name: "transaction-retry",
  payload: transactionRetryPayload,
  worker: { concurrency: 2, lockDurationMs: 60_000 },
});
