import { z } from "zod";
import { cacheKeys } from "../../cache/cache-keys.js";
import { defineJob } from "../../queues/job-definition.js";
import { type SweepResult, sweepDueTransactions } from "./due-transactions.js";
import { defaultSettlementMode, settlementModes } from "./settlement.js";

/**
 * transaction-retry: sweeps `transactions` due for (re)settlement and settles
 * each against its escrow account (seed 000 "Transaction Optimization",
 * seed 002 "transaction retry logic"). Scheduled every minute; sweeps that
 * overlap claim disjoint rows, and a rerun never settles a transaction twice.
 * The story is in due-transactions.ts (claim, reschedule) and
 * settlement.ts (one settlement, sign conventions).
 */
export const transactionRetryPayload = z
  .object({
    /** Transactions this sweep claims at most. @defaultValue 500 */
    limit: z.number().int().min(1).max(10_000).optional(),
    /** Transactions claimed per statement. @defaultValue 50 */
    pageSize: z.number().int().min(1).max(1000).optional(),
    /** How long a claim keeps other sweeps off a row; a dead sweep's rows come back after it. @defaultValue 300000 */
    leaseMs: z.number().int().min(1000).max(86_400_000).optional(),
    /** Settlement design; see the README. @defaultValue defaultSettlementMode */
    mode: z.enum(settlementModes).optional(),
  })
  .strict();

export type TransactionRetryPayload = z.output<typeof transactionRetryPayload>;

export type TransactionRetryResult = SweepResult;

export const transactionRetryJob = defineJob({
  queue: "transaction-retry",
  payloadSchema: transactionRetryPayload,

  async handle(payload, { db, log, config, reportProgress, invalidateCache }): Promise<TransactionRetryResult> {
    const mode = payload.mode ?? defaultSettlementMode;
    const result = await sweepDueTransactions(db.prisma, {
      limit: payload.limit ?? 500,
      pageSize: payload.pageSize,
      leaseMs: payload.leaseMs,
      mode,
      maxAttempts: config.TRANSACTION_MAX_ATTEMPTS,
      log,
      async onPage(progress, changedAccountIds) {
        // A stale cached balance is bounded by its TTL; losing Redis for a
        // moment must not undo or fail settlements that have committed.
        try {
          await invalidateCache(changedAccountIds.map(cacheKeys.escrowBalance));
        } catch (err) {
          log.warn({ err, accounts: changedAccountIds.length }, "could not invalidate cached escrow balances; they expire with their TTL");
        }
        await reportProgress(progress);
      },
    });
    log.info({ ...result, mode }, "transaction retry sweep done");
    return result;
  },
});
