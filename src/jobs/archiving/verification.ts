import type pg from "pg";
import { DbjobsError } from "../../lib/errors.js";
import type { MonthRange } from "../../partitions/month-bounds.js";
import type { FinalStatus, MonthCounts, Verification, VerificationMismatch } from "./contract.js";

/**
 * The archiving job's bookkeeping: per UTC month before the cutoff, how many
 * rows are live, how many archived, how many live ones are eligible. Moving a
 * row never changes its month, so live + archived per month is invariant
 * under archiving (even with two runs at once); any change means rows were
 * lost or doubled.
 */

// Takes $1 the cutoff (exclusive), $2 the chosen final statuses, $3/$4 an
// optional narrower range [from, to). Returns one row per UTC month with
// rows before the cutoff: live, archived, and eligible live rows.
// A row is eligible when its status is one of $2 and no retry is scheduled
// for it ("nextRetryAt" IS NULL; transaction-retry clears it when it settles).
const monthCountsSql = `
SELECT to_char(date_trunc('month', "createdAt", 'UTC') AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
       count(*) FILTER (WHERE live)::int AS live,
       count(*) FILTER (WHERE NOT live)::int AS archived,
       count(*) FILTER (WHERE live AND eligible)::int AS eligible
  FROM (SELECT "createdAt", true AS live, ("status" = ANY($2::"TransactionStatus"[]) AND "nextRetryAt" IS NULL) AS eligible
          FROM "transactions"
         WHERE "createdAt" < $1 AND ($3::timestamptz IS NULL OR ("createdAt" >= $3 AND "createdAt" < $4))
        UNION ALL
        SELECT "createdAt", false, false
          FROM "transactions_archive"
         WHERE "createdAt" < $1 AND ($3::timestamptz IS NULL OR ("createdAt" >= $3 AND "createdAt" < $4))) AS rows
 GROUP BY 1
 ORDER BY 1`;

export async function countPerMonth(client: pg.ClientBase, cutoff: Date, statuses: readonly FinalStatus[], range?: MonthRange): Promise<MonthCounts[]> {
  const { rows } = await client.query<MonthCounts>(monthCountsSql, [cutoff, statuses, range?.start ?? null, range?.end ?? null]);
  return rows;
}

/**
 * The months to count: from the month of the oldest live row before the
 * cutoff up to the cutoff. Archived months older than every live row cannot
 * change, and counting the whole archive on every run would grow forever.
 */
export async function countingScope(client: pg.ClientBase, cutoff: Date): Promise<MonthRange | undefined> {
  // Takes $1 the cutoff. Returns the first instant of the UTC month of the oldest live row before it (through the createdAt index), or null.
  const { rows } = await client.query<{ start: Date | null }>(
    `SELECT date_trunc('month', min("createdAt"), 'UTC') AS start FROM "transactions" WHERE "createdAt" < $1`,
    [cutoff],
  );
  const start = rows[0]?.start;
  return start ? { start, end: cutoff } : undefined;
}

/** Compares live + archived per month; `months` limits the check to those months. */
export function compareCounts(before: MonthCounts[], after: MonthCounts[], months?: readonly string[]): Verification {
  const total = (counts: MonthCounts | undefined) => (counts ? counts.live + counts.archived : 0);
  const beforeByMonth = new Map(before.map((counts) => [counts.month, counts]));
  const afterByMonth = new Map(after.map((counts) => [counts.month, counts]));
  const checked = months ?? [...new Set([...beforeByMonth.keys(), ...afterByMonth.keys()])].sort();
  const mismatches: VerificationMismatch[] = [];
  let rowsBefore = 0;
  let rowsAfter = 0;
  for (const month of checked) {
    const was = total(beforeByMonth.get(month));
    const now = total(afterByMonth.get(month));
    rowsBefore += was;
    rowsAfter += now;
    if (was !== now) mismatches.push({ month, before: was, after: now });
  }
  return { verified: mismatches.length === 0, months: checked.length, rowsBefore, rowsAfter, mismatches };
}

/**
 * Live + archived rows of some month changed during archiving: rows were lost
 * or doubled. Retrying cannot fix that, so the job fails at once
 * (`retryable: false`) and no more batches run.
 */
export class ArchiveVerificationError extends DbjobsError {
  readonly mismatches: VerificationMismatch[];

  constructor(mismatches: VerificationMismatch[], stage: string) {
    const list = mismatches.map((mismatch) => `${mismatch.month}: ${mismatch.before} before, ${mismatch.after} after`).join("; ");
    super(
      "DBJOBS_ARCHIVE_VERIFICATION",
      `Archive verification failed ${stage}: live + archived rows changed (${list}). No more batches were run. ` +
        "Compare transactions and transactions_archive for those months (look for rows deleted or inserted by something else while archiving ran) before archiving again.",
      { retryable: false },
    );
    this.mismatches = mismatches;
  }
}
