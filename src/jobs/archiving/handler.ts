import type pg from "pg";
import { lockNames, withTryAdvisoryLock } from "../../lib/advisory-locks.js";
import type { Logger } from "../../lib/logger.js";
import { withSession } from "../../lib/session.js";
import { listPartitions } from "../../partitions/catalog.js";
import { type MonthRange, monthFromKey, monthRange } from "../../partitions/month-bounds.js";
import type { JobHandler } from "../../queues/job-context.js";
import type {
  ArchivingDryRunResult,
  ArchivingResult,
  archivingContract,
  FastPathOutcome,
  FinalStatus,
  MonthCounts,
  MonthPlan,
  Verification,
} from "./contract.js";
import { ensureArchiveMonth, moveBatch, nextBatchSize } from "./move-batch.js";
import { moveWholePartition } from "./move-whole-partition.js";
import { archiveCutoff, planMonths } from "./plan.js";
import { ArchiveVerificationError, compareCounts, countingScope, countPerMonth } from "./verification.js";

/**
 * archiving: moves `transactions` rows in a final state, older than N years
 * (seed 000, "Archive Strategy": 7 years), into `transactions_archive`.
 *
 *  1. Count live, archived and eligible rows per UTC month (the baseline).
 *  2. Fast path: each monthly partition whose whole range is before the
 *     cutoff and whose every row is eligible is detached and attached to the
 *     archive, in constant time (move-whole-partition.ts).
 *  3. Batch path: the remaining eligible rows, month by month, `batchSize` at
 *     a time, each batch one atomic DELETE … RETURNING → INSERT, so a crash at
 *     any instant neither loses nor doubles a row and a rerun carries on
 *     (move-batch.ts).
 *  4. Verify: live + archived per month equals the baseline, checked after
 *     each month and at the end (verification.ts). A mismatch fails the job
 *     for good and no more batches run.
 *
 * Only final states are taken, never a row with a retry scheduled. One run at
 * a time: a second run finds the advisory lock taken and returns "skipped".
 */
export const handleArchiving: JobHandler<typeof archivingContract> = async (payload, { db, log, reportProgress, services }) => {
  const { statuses, batchSize, maxBatchMs } = payload;
  const maxRows = payload.maxRows ?? Number.POSITIVE_INFINITY;
  const cutoff = archiveCutoff(services.now(), payload.olderThanYears);
  return withSession<ArchivingResult | ArchivingDryRunResult>(db, async ({ client }) => {
    const scope = await countingScope(client, cutoff);
    const before = scope ? await countPerMonth(client, cutoff, statuses, scope) : [];
    const plan = await planMonths(client, before, cutoff, maxRows);
    if (payload.dryRun) {
      const wouldMove = Math.min(
        maxRows,
        plan.reduce((sum, month) => sum + month.eligible, 0),
      );
      log.info({ cutoff, wouldMove, months: plan }, "archiving dry run: nothing changed");
      return { dryRun: true, cutoff: cutoff.toISOString(), wouldMove, months: plan };
    }

    const outcome = await withTryAdvisoryLock(client, lockNames.archiving("transactions"), () =>
      archive(client, { plan, before, scope, cutoff, statuses, batchSize, maxBatchMs, maxRows, log, reportProgress }),
    );
    if (outcome.acquired) return outcome.value;
    log.info("another archiving run holds the lock; skipped");
    return {
      moved: 0,
      partitionsMoved: 0,
      batches: 0,
      verified: true,
      path: "none",
      cutoff: cutoff.toISOString(),
      fastPath: [],
      verification: compareCounts(before, before),
      durationMs: 0,
      rowsPerSecond: 0,
      longestBatchMs: 0,
      skipped: "another run holds the lock",
    };
  });
};

/** How long a DDL or batch may wait for a lock; the fast path falls back to batches when it expires. */
const lockTimeoutMs = 5000;

interface ArchiveRun {
  plan: MonthPlan[];
  before: MonthCounts[];
  /** The months counted before the run; the final check counts the same ones. */
  scope: MonthRange | undefined;
  cutoff: Date;
  statuses: FinalStatus[];
  batchSize: number;
  maxBatchMs: number;
  maxRows: number;
  log: Logger;
  reportProgress(progress: object): Promise<void>;
}

async function archive(client: pg.ClientBase, run: ArchiveRun): Promise<ArchivingResult> {
  const { plan, before, cutoff, statuses, batchSize, maxBatchMs, maxRows, log } = run;
  // Adapted after every batch so lock time stays near maxBatchMs whatever the machine's speed.
  // The first batch is small so a slow machine does not pay for a full one before adapting.
  let currentBatchSize = Math.min(batchSize, 1000);
  const startedAt = performance.now();
  const total = Math.min(
    maxRows,
    plan.reduce((sum, month) => sum + month.eligible, 0),
  );
  let moved = 0;
  let batches = 0;
  let partitionsMoved = 0;
  let batchRows = 0;
  let longestBatchMs = 0;
  const fastPath: FastPathOutcome[] = [];
  const partitions = await listPartitions(client, "transactions");
  log.info({ cutoff, eligible: total, months: plan.filter((month) => month.path !== "none").length }, "archiving started");

  const progress = async (phase: string) => {
    const seconds = (performance.now() - startedAt) / 1000;
    const rowsPerSecond = seconds > 0 ? Math.round(moved / seconds) : 0;
    const etaSeconds = rowsPerSecond > 0 ? Math.round(Math.max(0, total - moved) / rowsPerSecond) : null;
    const report = { phase, moved, total, batches, partitionsMoved, rowsPerSecond, etaSeconds };
    await run.reportProgress(report);
    return report;
  };

  const verifyMonth = async (month: string) => {
    const range = monthRange(monthFromKey(month));
    const now = await countPerMonth(client, cutoff, statuses, range);
    const check = compareCounts(before, now, [month]);
    if (!check.verified) failVerification(log, check, `after month ${month}`);
  };

  for (const month of plan) {
    if (month.path === "none" || moved >= maxRows) continue;
    const range = monthRange(monthFromKey(month.month));

    if (month.path === "fast") {
      const partition = partitions.find((candidate) => candidate.from?.getTime() === range.start.getTime());
      const outcome = partition ? await moveWholePartition(client, partition, range, statuses, { lockTimeoutMs, liveRowsEstimate: month.live }) : undefined;
      if (outcome) fastPath.push(outcome);
      if (outcome?.taken) {
        moved += outcome.rows;
        partitionsMoved += 1;
        log.info(
          { month: month.month, partition: outcome.partition, archivedAs: outcome.archivedAs, rows: outcome.rows, lockMs: Math.round(outcome.lockMs) },
          "partition moved whole (fast path)",
        );
        await verifyMonth(month.month);
        await progress("fast");
        continue;
      }
      log.info({ month: month.month, reason: outcome?.reason ?? "no partition" }, "fast path not taken; moving the month in batches");
    }

    await ensureArchiveMonth(client, range, lockTimeoutMs);
    const end = new Date(Math.min(range.end.getTime(), cutoff.getTime()));
    let from = range.start;
    for (;;) {
      const limit = Math.min(currentBatchSize, maxRows - moved);
      if (limit <= 0) break;
      const batchStarted = performance.now();
      const batch = await moveBatch(client, from, end, statuses, limit);
      if (batch.deleted !== batch.archived) {
        failVerification(
          log,
          {
            verified: false,
            months: 1,
            rowsBefore: batch.deleted,
            rowsAfter: batch.archived,
            mismatches: [{ month: month.month, before: batch.deleted, after: batch.archived }],
          },
          `in batch ${batches + 1}, which deleted ${batch.deleted} rows but archived ${batch.archived} (the batch was rolled back, nothing was lost)`,
        );
      }
      if (batch.deleted === 0 || !batch.lastCreatedAt) break;
      const batchMs = performance.now() - batchStarted;
      longestBatchMs = Math.max(longestBatchMs, batchMs);
      currentBatchSize = nextBatchSize(currentBatchSize, batchMs, { batchSize, maxBatchMs });
      batches += 1;
      moved += batch.deleted;
      batchRows += batch.deleted;
      from = batch.lastCreatedAt;
      const report = await progress("batches");
      log.info({ month: month.month, batch: batches, rows: batch.deleted, batchMs: Math.round(batchMs), ...report }, "archiving batch moved");
      // A short batch means the month has nothing more to take now; rows another session holds are left for the next run.
      if (batch.deleted < limit) break;
    }
    await verifyMonth(month.month);
  }

  const after = run.scope ? await countPerMonth(client, cutoff, statuses, run.scope) : [];
  const verification = compareCounts(before, after);
  if (!verification.verified) failVerification(log, verification, "at the end");

  const durationMs = Math.round(performance.now() - startedAt);
  const path = partitionsMoved > 0 && batchRows > 0 ? "fast+batches" : partitionsMoved > 0 ? "fast" : batchRows > 0 ? "batches" : "none";
  const result: ArchivingResult = {
    moved,
    partitionsMoved,
    batches,
    verified: true,
    path,
    cutoff: cutoff.toISOString(),
    fastPath,
    verification,
    durationMs,
    rowsPerSecond: durationMs > 0 ? Math.round((moved * 1000) / durationMs) : 0,
    longestBatchMs: Math.round(longestBatchMs),
  };
  log.info(
    { moved, partitionsMoved, batches, path, verification: { verified: true, months: verification.months, rows: verification.rowsAfter } },
    "archiving done; verified",
  );
  return result;
}

function failVerification(log: Logger, verification: Verification, stage: string): never {
  const error = new ArchiveVerificationError(verification.mismatches, stage);
  log.error({ verification }, error.message);
  throw error;
}
