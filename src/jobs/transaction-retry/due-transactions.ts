import type { PrismaClient } from "../../lib/db.js";
import { coerceError, RetryExhaustedError } from "../../lib/errors.js";
import { type BackoffOptions, backoffDelayMs } from "../../lib/retry.js";

/**
 * The transactions table as the sweep's work list: claiming the rows that are
 * due, and giving a failed one its next attempt (or ending it as FAILED).
 *
 * A claim is one short statement that locks due rows with FOR UPDATE SKIP
 * LOCKED and pushes their `nextRetryAt` one lease ahead, so concurrent sweeps
 * take disjoint pages and never wait on each other's claims. The lease is only
 * an efficiency device: settling re-reads each row and settles it only if it
 * is still PENDING/RETRYING, so if a sweep dies its unsettled rows come due
 * again when the lease ends, and if a slow sweep's lease ends while it still
 * runs, the re-read (and the ledger's unique transactionId) keeps a second
 * settler from settling again.
 */
export interface DueTransaction {
  id: string;
  /** The partition key; every statement on the row names it, so only one partition is read. */
  createdAt: Date;
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

/** Claims up to `pageSize` due transactions for `leaseMs`; an empty page means nothing is due. */
export function claimDueTransactions(prisma: PrismaClient, pageSize: number, leaseMs: number): Promise<DueTransaction[]> {
  return prisma.$queryRawUnsafe<DueTransaction[]>(claimDueSql, pageSize, leaseMs);
}

export interface FailedAttempt {
  /** RETRYING (with its next attempt scheduled) or FAILED (that was the last attempt). */
  status: "RETRYING" | "FAILED";
  retryCount: number;
}

/**
 * Counts one failed attempt of `transaction` and records why. Returns its new
 * status, or undefined when another settler had ended it meanwhile.
 */
export async function recordFailedAttempt(
  prisma: PrismaClient,
  transaction: DueTransaction,
  err: unknown,
  maxAttempts: number,
  retryBackoff: BackoffOptions,
): Promise<FailedAttempt | undefined> {
  const delays = Array.from({ length: maxAttempts }, (_, index) => transactionRetryDelayMs(index + 1, retryBackoff));
  const [row] = await prisma.$queryRawUnsafe<FailedAttempt[]>(rescheduleSql, transaction.id, transaction.createdAt, describeError(err), maxAttempts, delays);
  return row;
}

/** The transaction's lastError: one line, at most 1000 characters, naming the last conflict when conflicts ran out. */
function describeError(err: unknown): string {
  let message = coerceError(err).message;
  if (err instanceof RetryExhaustedError) message += ` Last conflict: ${coerceError(err.cause).message}`;
  return message.replace(/\s+/g, " ").trim().slice(0, 1000);
}
