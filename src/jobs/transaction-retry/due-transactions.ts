import type { PrismaClient } from "../../lib/db.js";
import { RetryExhaustedError } from "../../lib/errors.js";
import type { Logger } from "../../lib/logger.js";
import { incrementCounter } from "../../lib/metrics.js";
import { type BackoffOptions, backoffDelayMs, isWriteConflict } from "../../lib/retry.js";
import { type FailureReason, type SettlementMode, settleTransaction } from "./settlement.js";

/**
 * One sweep of the transaction retry queue: claim the due transactions a page
 * at a time, settle each in its own database transaction, and give a failed
 * one its next attempt (or end it as FAILED for good).
 *
 * Claiming and settling are separate on purpose. A claim is one short
 * statement that locks due rows with FOR UPDATE SKIP LOCKED and pushes their
 * `nextRetryAt` one lease ahead, so concurrent sweeps take disjoint pages and
 * never wait on each other's claims. Settling then re-reads each row in its own
 * transaction and settles it only if it is still PENDING/RETRYING. So the lease
 * is only an efficiency device: if a sweep dies, its unsettled rows come due
 * again when the lease ends, and if a slow sweep's lease ends while it still
 * runs, the re-read (and the ledger's unique transactionId) keeps the second
 * settler from settling again.
 */
export interface SweepOptions {
  /** Transactions claimed by this sweep at most. @defaultValue 500 */
  limit?: number;
  /** Transactions claimed per statement. @defaultValue 50 */
  pageSize?: number;
  /** How long a claim keeps other sweeps off a row. @defaultValue 300000 */
  leaseMs?: number;
  /** @defaultValue defaultSettlementMode */
  mode?: SettlementMode;
  /** Settlement attempts (failed ones counted in retryCount) before FAILED for good. @defaultValue 8 */
  maxAttempts?: number;
  /** Reruns of one settlement on write conflicts before it is rescheduled instead. @defaultValue 12 */
  conflictAttempts?: number;
  /** Backoff between conflict reruns. @defaultValue { baseDelayMs: 5, maxDelayMs: 250 } */
  conflictBackoff?: BackoffOptions;
  /** Backoff between scheduled attempts (nextRetryAt). @defaultValue transactionRetryBackoff */
  retryBackoff?: BackoffOptions;
  log?: Logger;
  /** Called after each page with the accounts whose balances it changed. */
  onPage?(progress: SweepResult, changedAccountIds: string[]): Promise<void>;
}

export interface SweepResult {
  settled: number;
  failedForGood: number;
  rescheduled: number;
  conflictsRetried: number;
  /** Claimed rows another settler had already ended (settled, failed or cancelled). */
  skipped: number;
}

/** The next attempt of a transaction comes due 30 s, 1 min, 2 min … later, capped at 1 h, with equal jitter. */
export const transactionRetryBackoff: Required<BackoffOptions> = { baseDelayMs: 30_000, maxDelayMs: 3_600_000 };

/** The delay before attempt `failedAttempts + 1` of a transaction. */
export function transactionRetryDelayMs(failedAttempts: number, backoff: BackoffOptions = transactionRetryBackoff, random?: () => number): number {
  return backoffDelayMs(failedAttempts, backoff, random);
}

// Takes $1 page size, $2 lease in ms. Locks up to $1 due transactions
// (PENDING or RETRYING with nextRetryAt <= now, oldest first, through the
// (status, nextRetryAt) index), skipping rows another sweep holds, and moves
// their nextRetryAt one lease ahead. Returns their (id, createdAt).
const claimDueSql = `
WITH due AS (
  SELECT "id", "createdAt"
    FROM "transactions"
   WHERE "status" IN ('PENDING', 'RETRYING') AND "nextRetryAt" <= now()
   ORDER BY "nextRetryAt"
   LIMIT $1
     FOR UPDATE SKIP LOCKED
)
UPDATE "transactions" t
   SET "nextRetryAt" = now() + $2 * interval '1 millisecond'
  FROM due
 WHERE t."id" = due."id" AND t."createdAt" = due."createdAt"
RETURNING t."id"::text AS "id", t."createdAt"`;

// Takes $1 id, $2 createdAt, $3 lastError, $4 max attempts, $5 int[] the delay
// in ms before attempt n+1 at index n. Counts one failed attempt; the row goes
// RETRYING with its next nextRetryAt, or FAILED for good on the last attempt.
// Returns the new status, or no row if the transaction was ended meanwhile.
const rescheduleSql = `
UPDATE "transactions"
   SET "retryCount" = "retryCount" + 1,
       "lastError" = $3,
       "status" = (CASE WHEN "retryCount" + 1 >= $4 THEN 'FAILED' ELSE 'RETRYING' END)::"TransactionStatus",
       "nextRetryAt" = CASE WHEN "retryCount" + 1 >= $4 THEN NULL
                            ELSE now() + coalesce(($5::int[])["retryCount" + 1], 0) * interval '1 millisecond' END,
       "updatedAt" = now()
 WHERE "id" = $1::uuid AND "createdAt" = $2 AND "status" IN ('PENDING', 'RETRYING')
RETURNING "status"::text AS "status", "retryCount"`;

export const failedForGoodMetric = "dbjobs_transactions_failed_for_good_total";

function describeError(err: unknown): string {
  let message = err instanceof Error ? err.message : String(err);
  if (err instanceof RetryExhaustedError) message += ` Last conflict: ${err.cause instanceof Error ? err.cause.message : String(err.cause)}`;
  return message.replace(/\s+/g, " ").trim().slice(0, 1000);
}

export async function sweepDueTransactions(prisma: PrismaClient, options: SweepOptions = {}): Promise<SweepResult> {
  const limit = options.limit ?? 500;
  const pageSize = Math.min(options.pageSize ?? 50, limit);
  const leaseMs = options.leaseMs ?? 300_000;
  const maxAttempts = options.maxAttempts ?? 8;
  const retryBackoff = options.retryBackoff ?? transactionRetryBackoff;
  const result: SweepResult = { settled: 0, failedForGood: 0, rescheduled: 0, conflictsRetried: 0, skipped: 0 };

  const failedForGood = (reason: FailureReason) => {
    result.failedForGood++;
    incrementCounter(failedForGoodMetric, { reason });
  };

  let claimed = 0;
  while (claimed < limit) {
    const page = await prisma.$queryRawUnsafe<{ id: string; createdAt: Date }[]>(claimDueSql, Math.min(pageSize, limit - claimed), leaseMs);
    if (page.length === 0) break;
    claimed += page.length;
    const changed = new Set<string>();

    for (const { id, createdAt } of page) {
      try {
        const outcome = await settleTransaction(prisma, id, createdAt, {
          mode: options.mode,
          conflictRetry: {
            maxAttempts: options.conflictAttempts ?? 12,
            ...(options.conflictBackoff ?? { baseDelayMs: 5, maxDelayMs: 250 }),
            onConflict: () => {
              result.conflictsRetried++;
            },
          },
        });
        if (outcome.kind === "settled") {
          result.settled++;
          changed.add(outcome.escrowAccountId);
        } else if (outcome.kind === "failed") {
          failedForGood(outcome.reason);
          options.log?.warn({ transactionId: id, reason: outcome.reason }, "transaction FAILED for good");
        } else result.skipped++;
      } catch (err) {
        // Not a conflict we could absorb in place: count a failed attempt and
        // let a later sweep try again. If even this write fails (PostgreSQL is
        // gone) the error ends the sweep, and the lease brings the row back.
        const delays = Array.from({ length: maxAttempts }, (_, index) => transactionRetryDelayMs(index + 1, retryBackoff));
        const [row] = await prisma.$queryRawUnsafe<{ status: string; retryCount: number }[]>(
          rescheduleSql,
          id,
          createdAt,
          describeError(err),
          maxAttempts,
          delays,
        );
        if (!row) result.skipped++;
        else if (row.status === "FAILED") {
          failedForGood("attempts_exhausted");
          options.log?.warn({ transactionId: id, attempts: row.retryCount, err }, "transaction FAILED for good after its last attempt");
        } else {
          result.rescheduled++;
          options.log?.info({ transactionId: id, attempt: row.retryCount, conflict: isWriteConflict(err), err }, "settlement failed; rescheduled");
        }
      }
    }
    await options.onPage?.({ ...result }, [...changed]);
  }
  return result;
}
