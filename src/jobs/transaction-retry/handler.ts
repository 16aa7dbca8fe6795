import { cacheKeys } from "../../cache/cache-keys.js";
import type { PrismaClient } from "../../lib/db.js";
import type { Logger } from "../../lib/logger.js";
import { metrics } from "../../lib/metrics.js";
import { type BackoffOptions, isWriteConflict } from "../../lib/retry.js";
import type { JobHandler } from "../../queues/job-context.js";
import type { TransactionRetryPayload, TransactionRetryResult, transactionRetryContract } from "./contract.js";
import { claimDueTransactions, recordFailedAttempt, transactionRetryBackoff } from "./due-transactions.js";
import { type FailureReason, settleTransaction } from "./settlement.js";

/**
 * transaction-retry: sweeps `transactions` due for (re)settlement and settles
 * each against its escrow account (seed 000 "Transaction Optimization",
 * seed 002 "transaction retry logic"). Scheduled every minute.
 *
 * One sweep, a page at a time:
 *   1. claim a page of due transactions (due-transactions.ts), so overlapping
 *      sweeps take disjoint rows;
 *   2. settle each in its own database transaction (settlement.ts), rerun in
 *      place on write conflicts; one that can never settle ends FAILED there;
 *   3. a settlement that failed otherwise counts as a failed attempt: the row
 *      is rescheduled with backoff, or FAILED for good after its last attempt;
 *   4. drop the cached balances of the accounts the page changed, report progress.
 * A rerun never settles a transaction twice.
 */
export const handleTransactionRetry: JobHandler<typeof transactionRetryContract> = async (
  payload,
  { db, log, config, reportProgress, invalidateCache, signal },
) => {
  const result = await sweepDueTransactions(db.prisma, {
    ...payload,
    signal,
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
  log.info({ ...result, mode: payload.mode }, "transaction retry sweep done");
  return result;
};

export interface SweepOptions extends TransactionRetryPayload {
  /** Settlement attempts (failed ones counted in retryCount) before FAILED for good: TRANSACTION_MAX_ATTEMPTS. */
  maxAttempts: number;
  /** Reruns of one settlement on write conflicts before it is rescheduled instead. @defaultValue 12 */
  conflictAttempts?: number;
  /** Backoff between conflict reruns. @defaultValue { baseDelayMs: 5, maxDelayMs: 250 } */
  conflictBackoff?: BackoffOptions;
  /** Backoff between scheduled attempts (nextRetryAt). @defaultValue transactionRetryBackoff */
  retryBackoff?: BackoffOptions;
  log?: Logger;
  /**
   * Checked before each settlement: once aborted (a cancel, a deadline) no
   * settlement starts, and one under way when it fires rolls back whole.
   * Claimed rows left unsettled come back when their lease ends.
   */
  signal?: AbortSignal;
  /** Called after each page with the counts so far and the accounts whose balances the page changed. */
  onPage?(progress: TransactionRetryResult, changedAccountIds: string[]): Promise<void>;
}

/** One sweep of the due transactions: claim → settle → reschedule or fail, a page at a time, until `limit` rows were claimed or none is due. */
export async function sweepDueTransactions(prisma: PrismaClient, options: SweepOptions): Promise<TransactionRetryResult> {
  const { limit, leaseMs, mode, maxAttempts, log } = options;
  const pageSize = Math.min(options.pageSize, limit);
  const result: TransactionRetryResult = { settled: 0, failedForGood: 0, rescheduled: 0, conflictsRetried: 0, skipped: 0 };
  const conflictRetry = {
    maxAttempts: options.conflictAttempts ?? 12,
    ...(options.conflictBackoff ?? { baseDelayMs: 5, maxDelayMs: 250 }),
    onConflict: () => {
      result.conflictsRetried++;
    },
  };
  const failedForGood = (reason: FailureReason) => {
    result.failedForGood++;
    metrics.transactionsFailedForGood.inc({ reason });
  };

  let claimed = 0;
  while (claimed < limit) {
    const page = await claimDueTransactions(prisma, Math.min(pageSize, limit - claimed), leaseMs);
    if (page.length === 0) break;
    claimed += page.length;
    const changed = new Set<string>();

    for (const transaction of page) {
      options.signal?.throwIfAborted();
      try {
        const outcome = await settleTransaction(prisma, transaction.id, transaction.createdAt, { mode, conflictRetry, signal: options.signal });
        if (outcome.kind === "settled") {
          result.settled++;
          changed.add(outcome.escrowAccountId);
        } else if (outcome.kind === "failed") {
          failedForGood(outcome.reason);
          log?.warn({ transactionId: transaction.id, reason: outcome.reason }, "transaction FAILED for good");
        } else result.skipped++;
      } catch (err) {
        // Stopped: not a failed attempt of this transaction.
        options.signal?.throwIfAborted();
        // Not a conflict we could absorb in place: count a failed attempt and
        // let a later sweep try again. If even this write fails (PostgreSQL is
        // gone) the error ends the sweep, and the lease brings the row back.
        const attempt = await recordFailedAttempt(prisma, transaction, err, maxAttempts, options.retryBackoff ?? transactionRetryBackoff);
        if (!attempt) result.skipped++;
        else if (attempt.status === "FAILED") {
          failedForGood("attempts_exhausted");
          log?.warn({ transactionId: transaction.id, attempts: attempt.retryCount, err }, "transaction FAILED for good after its last attempt");
        } else {
          result.rescheduled++;
          log?.info({ transactionId: transaction.id, attempt: attempt.retryCount, conflict: isWriteConflict(err), err }, "settlement failed; rescheduled");
        }
      }
    }
    await options.onPage?.({ ...result }, [...changed]);
  }
  return result;
}
