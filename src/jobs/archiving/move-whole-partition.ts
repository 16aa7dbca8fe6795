import type pg from "pg";
import { inClientTransaction } from "../../lib/client-transaction.js";
import { quoteIdent } from "../../lib/db.js";
import { isLockNotAvailable } from "../../lib/retry.js";
import { defaultPartitionOf, listPartitions, type PartitionInfo } from "../../partitions/catalog.js";
import { ensureBoundCheck } from "../../partitions/create-partition.js";
import { type MonthRange, monthBoundSql, monthPartitionName } from "../../partitions/month-bounds.js";
import type { FastPathOutcome, FinalStatus } from "./contract.js";

/**
 * The fast path of archiving: one whole monthly partition moves from
 * `transactions` to `transactions_archive` by DETACH/ATTACH, in constant time
 * in the partition's size.
 */

const allStatuses = ["PENDING", "RETRYING", "COMPLETED", "FAILED", "CANCELLED"] as const;

/**
 * Moves one monthly partition of `transactions`, every row of which is
 * eligible, into `transactions_archive` in one transaction:
 *
 *   lock the parent; check every row is eligible (two index probes);
 *   DETACH the partition; RENAME it transactions_archive_YYYY_MM;
 *   ATTACH it to the archive.
 *
 * ATTACH skips its validation scan because the partition carries a CHECK
 * constraint equal to its bound (see src/partitions/create-month-partition.ts;
 * added here once, with one scan, for a partition made elsewhere). ATTACH
 * still scans the archive's default partition, which the batch path keeps
 * empty by giving each archived month its own archive partition.
 *
 * When the archive already holds rows of that month (an earlier run moved
 * some of them in batches), those rows are copied into the partition before
 * it is attached and the archive's old partition is dropped, as long as they
 * are fewer than the rows being moved; otherwise the batch path is cheaper.
 */
export async function moveWholePartition(
  client: pg.ClientBase,
  partition: PartitionInfo,
  range: MonthRange,
  statuses: readonly FinalStatus[],
  options: { lockTimeoutMs: number /** The month's live rows as counted before the run; only weighs the archive merge. */; liveRowsEstimate: number },
): Promise<FastPathOutcome> {
  const { lockTimeoutMs, liveRowsEstimate } = options;
  const notTaken = (reason: string): FastPathOutcome => ({ taken: false, partition: partition.name, reason });
  const target = quoteIdent(partition.name);
  const bound = monthBoundSql(range);
  try {
    const lockedAt = performance.now();
    const outcome = await inClientTransaction(
      client,
      async (): Promise<FastPathOutcome> => {
        // The parent first, as DETACH takes it: every other session queues behind one lock instead of deadlocking.
        await client.query(`LOCK TABLE ONLY "transactions" IN ACCESS EXCLUSIVE MODE`);
        const current = (await listPartitions(client, "transactions")).find((candidate) => candidate.name === partition.name);
        if (current?.from?.getTime() !== range.start.getTime() || current?.to?.getTime() !== range.end.getTime()) {
          return notTaken("no longer a monthly partition of transactions");
        }

        // Takes $1 the states that block archiving, $2 every state. Returns whether any row is not eligible.
        const { rows: blockers } = await client.query<{ blocked: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM ${target} WHERE "status" = ANY($1::"TransactionStatus"[]))
               OR EXISTS (SELECT 1 FROM ${target} WHERE "status" = ANY($2::"TransactionStatus"[]) AND "nextRetryAt" IS NOT NULL) AS blocked`,
          [allStatuses.filter((status) => !(statuses as readonly string[]).includes(status)), allStatuses],
        );
        if (blockers[0]?.blocked) return notTaken("holds rows that are not eligible");

        // Counting the partition itself would scan it under the lock; the
        // archive's rows of the month are few (usually none) and come off an index.
        const { rows: sizes } = await client.query<{ archived: number }>(
          `SELECT count(*)::int AS archived FROM "transactions_archive" WHERE "createdAt" >= $1 AND "createdAt" < $2`,
          [range.start, range.end],
        );
        const archived = sizes[0]?.archived ?? 0;
        if (archived > liveRowsEstimate) {
          return notTaken(`the archive already holds ${archived} rows of this month, more than the ~${liveRowsEstimate} left; batches are cheaper`);
        }

        await ensureBoundCheck(client, "transactions", current);
        await client.query(`ALTER TABLE "transactions" DETACH PARTITION ${target}`);

        const archiveName = monthPartitionName("transactions_archive", range.start);
        const archivePartitions = await listPartitions(client, "transactions_archive");
        const overlapping = archivePartitions.filter(
          (candidate) => !candidate.isDefault && candidate.from !== null && candidate.to !== null && candidate.from < range.end && candidate.to > range.start,
        );
        if (overlapping.some((candidate) => candidate.from?.getTime() !== range.start.getTime() || candidate.to?.getTime() !== range.end.getTime())) {
          throw new FastPathAbort("the archive has a partition that does not match this month");
        }
        if (archived > 0 || overlapping.length > 0) {
          await client.query(`LOCK TABLE ONLY "transactions_archive" IN ACCESS EXCLUSIVE MODE`);
          // Takes the month's bounds. Copies the archive's rows of that month into the partition about to replace them.
          await client.query(`INSERT INTO ${target} SELECT * FROM "transactions_archive" WHERE "createdAt" >= $1 AND "createdAt" < $2`, [
            range.start,
            range.end,
          ]);
          for (const old of overlapping) {
            await client.query(`ALTER TABLE "transactions_archive" DETACH PARTITION ${quoteIdent(old.name)}`);
            await client.query(`DROP TABLE ${quoteIdent(old.name)}`);
          }
          const archiveDefault = defaultPartitionOf(archivePartitions);
          if (archiveDefault) {
            await client.query(`DELETE FROM ${quoteIdent(archiveDefault.name)} WHERE "createdAt" >= $1 AND "createdAt" < $2`, [range.start, range.end]);
          }
        }

        const { rows: free } = await client.query<{ taken: string | null }>("SELECT to_regclass($1)::text AS taken", [quoteIdent(archiveName)]);
        const finalName = free[0]?.taken ? partition.name : archiveName;
        if (finalName !== partition.name) await client.query(`ALTER TABLE ${target} RENAME TO ${quoteIdent(finalName)}`);
        await client.query(`ALTER TABLE "transactions_archive" ATTACH PARTITION ${quoteIdent(finalName)} FOR VALUES ${bound}`);
        return { taken: true, partition: partition.name, archivedAs: finalName, rows: 0, mergedFromArchive: archived, lockMs: 0 };
      },
      { lockTimeoutMs },
    );
    if (!outcome.taken) return outcome;
    // From the first lock to COMMIT: how long other sessions waited on transactions.
    const lockMs = performance.now() - lockedAt;
    // After COMMIT, so the count does not lengthen the lock. The table now belongs to the archive; nothing else writes to it.
    const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${quoteIdent(outcome.archivedAs)}`);
    return { ...outcome, rows: (rows[0]?.n ?? 0) - outcome.mergedFromArchive, lockMs };
  } catch (err) {
    if (err instanceof FastPathAbort) return notTaken(err.message);
    if (isLockNotAvailable(err)) return notTaken(`its locks were not granted within ${lockTimeoutMs} ms`);
    throw err;
  }
}

/** Rolls the fast path's transaction back; the month goes to the batch path. */
class FastPathAbort extends Error {}
