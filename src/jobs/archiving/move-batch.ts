import type pg from "pg";
import { createPartition } from "../../partitions/create-partition.js";
import type { MonthRange } from "../../partitions/month-bounds.js";
import type { FinalStatus } from "./contract.js";

/**
 * The batch path: eligible rows move from `transactions` to
 * `transactions_archive` a batch at a time, each batch one atomic
 * DELETE … RETURNING → INSERT statement.
 */

// Takes $1 the batch's lower bound (inclusive: the month's start, or the
// newest "createdAt" the previous batch moved), $2 its upper bound (exclusive:
// the month's end or the cutoff), $3 the final statuses, $4 the batch size.
// Returns one row: rows deleted from transactions, rows inserted into
// transactions_archive, the newest "createdAt" moved.
// One statement, so a crash at any instant leaves each row on exactly one side.
// The bounds let the planner prune to one month's partition (plus the
// default); keyset order on "createdAt" keeps each batch from rescanning the
// dead rows earlier batches left behind. SKIP LOCKED leaves rows that another
// session is changing (a settlement, a concurrent run) for later.
const moveBatchSql = `
WITH picked AS (
  SELECT "id", "createdAt"
    FROM "transactions"
   WHERE "createdAt" >= $1 AND "createdAt" < $2
     AND "status" = ANY($3::"TransactionStatus"[]) AND "nextRetryAt" IS NULL
   ORDER BY "createdAt"
   LIMIT $4
   FOR UPDATE SKIP LOCKED
), moved AS (
  DELETE FROM "transactions" t
   USING picked p
   WHERE t."id" = p."id" AND t."createdAt" = p."createdAt"
     AND t."createdAt" >= $1 AND t."createdAt" < $2
  RETURNING t.*
), archived AS (
  INSERT INTO "transactions_archive" SELECT * FROM moved RETURNING "createdAt"
)
SELECT (SELECT count(*) FROM moved)::int AS deleted, count(*)::int AS archived, max("createdAt") AS "lastCreatedAt" FROM archived`;

export interface BatchOutcome {
  deleted: number;
  archived: number;
  lastCreatedAt: Date | null;
}

/**
 * Runs one batch. The statement is atomic by itself; it runs inside an
 * explicit transaction only so that a batch whose deleted and archived counts
 * differ (a trigger swallowing inserts, say) is rolled back rather than
 * committed: the caller then fails the job with nothing lost.
 */
export async function moveBatch(client: pg.ClientBase, from: Date, to: Date, statuses: readonly FinalStatus[], batchSize: number): Promise<BatchOutcome> {
  await client.query("BEGIN");
  try {
    const { rows } = await client.query<BatchOutcome>(moveBatchSql, [from, to, statuses, batchSize]);
    const outcome = rows[0] ?? { deleted: 0, archived: 0, lastCreatedAt: null };
    await client.query(outcome.deleted === outcome.archived ? "COMMIT" : "ROLLBACK");
    return outcome;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

/** Makes sure the archive has its own partition for the month, so batch-moved rows do not pile up in its default partition. */
export async function ensureArchiveMonth(client: pg.ClientBase, range: MonthRange, lockTimeoutMs: number): Promise<void> {
  await createPartition(client, "transactions_archive", range.start, { lockTimeoutMs });
}

/** Shrinks a batch that held its locks too long (in proportion, with 20% headroom), grows quick ones by half, within [100, batchSize]. */
export function nextBatchSize(current: number, batchMs: number, limits: { batchSize: number; maxBatchMs: number }): number {
  if (batchMs > limits.maxBatchMs) return Math.max(100, Math.floor((current * limits.maxBatchMs * 0.8) / batchMs));
  if (batchMs < limits.maxBatchMs / 2) return Math.min(limits.batchSize, Math.ceil(current * 1.5));
  return current;
}
