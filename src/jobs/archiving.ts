import { UnrecoverableError } from "bullmq";
import type pg from "pg";
import { z } from "zod";
import { lockNames, withTryAdvisoryLock } from "../lib/advisory-locks.js";
import { ensureArchiveMonth, type FastPathOutcome, moveBatch, moveWholePartition } from "../lib/archive-moves.js";
import {
  ArchiveVerificationError,
  compareCounts,
  countingScope,
  countPerMonth,
  type FinalStatus,
  finalStatuses,
  type MonthCounts,
  type Verification,
} from "../lib/archive-verify.js";
import type { Logger } from "../lib/logger.js";
import { listPartitions, type MonthRange, monthFromKey, monthRange } from "../lib/partitions.js";
import { defineJob } from "../queues/job-definition.js";

/**
 * archiving: moves `transactions` rows in a final state, older than N years
 * (seed 000, "Archive Strategy": 7 years), into `transactions_archive`.
 *
 *  1. Count live, archived and eligible rows per UTC month (the baseline).
 *  2. Fast path: each monthly partition whose whole range is before the
 *     cutoff and whose every row is eligible is detached and attached to the
 *     archive, in constant time.
 *  3. Batch path: the remaining eligible rows, month by month, `batchSize` at
 *     a time, each batch one atomic DELETE … RETURNING → INSERT, so a crash at
 *     any instant neither loses nor doubles a row and a rerun carries on.
 *  4. Verify: live + archived per month equals the baseline, checked after
 *     each month and at the end. A mismatch fails the job for good and no
 *     more batches run.
 *
 * Only final states are taken, never a row with a retry scheduled.
 */
export const archivingPayload = z
  .object({
    /** Rows created more than this many years ago (UTC) are eligible. @defaultValue 7 */
    olderThanYears: z.number().int().min(1).max(100).optional(),
    /** Final states to archive. @defaultValue ["COMPLETED", "CANCELLED"] */
    statuses: z
      .array(z.enum(finalStatuses, { error: `must be one of ${finalStatuses.join(", ")} (only final states are archived)` }))
      .min(1)
      .optional(),
    /** Rows per batch statement. @defaultValue 5000 */
    batchSize: z.number().int().min(100).max(50_000).optional(),
    /**
     * Longest a batch should hold its row locks. A batch slower than this
     * makes the next ones smaller (never under 100 rows); quick batches grow
     * back to batchSize. @defaultValue 300
     */
    maxBatchMs: z.number().int().min(10).max(60_000).optional(),
    /** Stop after moving this many rows (whole partitions count in full). @defaultValue no limit */
    maxRows: z.number().int().min(1).optional(),
    /** Report the counts per month and what would move; change nothing. @defaultValue false */
    dryRun: z.boolean().optional(),
  })
  .strict();

export type ArchivingPayload = z.output<typeof archivingPayload>;

export interface MonthPlan extends MonthCounts {
  /** How this month's eligible rows move (or would move). */
  path: "fast" | "batches" | "none";
}

export interface ArchivingResult {
  moved: number;
  partitionsMoved: number;
  batches: number;
  verified: true;
  /** "fast", "batches", both, or "none": which path(s) this run took. */
  path: "fast" | "batches" | "fast+batches" | "none";
  /** Rows created before this instant were eligible. */
  cutoff: string;
  fastPath: FastPathOutcome[];
  verification: Verification;
  durationMs: number;
  rowsPerSecond: number;
  /** The longest batch transaction, i.e. the longest any batch held its row locks. */
  longestBatchMs: number;
  skipped?: string;
}

export interface ArchivingDryRunResult {
  dryRun: true;
  cutoff: string;
  /** Rows that would move (capped by maxRows). */
  wouldMove: number;
  months: MonthPlan[];
}

/** How long a DDL or batch may wait for a lock; the fast path falls back to batches when it expires. */
const lockTimeoutMs = 5000;

/** now − years, in UTC (29 February becomes 1 March). */
export function archiveCutoff(now: Date, years: number): Date {
  return new Date(
    Date.UTC(
      now.getUTCFullYear() - years,
      now.getUTCMonth(),
      now.getUTCDate(),
      now.getUTCHours(),
      now.getUTCMinutes(),
      now.getUTCSeconds(),
      now.getUTCMilliseconds(),
    ),
  );
}

export const archivingJob = defineJob({
  queue: "archiving",
  payloadSchema: archivingPayload,

  async handle(payload, { db, log, reportProgress }): Promise<ArchivingResult | ArchivingDryRunResult> {
    const statuses = payload.statuses ?? ["COMPLETED", "CANCELLED"];
    const batchSize = payload.batchSize ?? 5000;
    const maxBatchMs = payload.maxBatchMs ?? 300;
    const maxRows = payload.maxRows ?? Number.POSITIVE_INFINITY;
    const cutoff = archiveCutoff(new Date(), payload.olderThanYears ?? 7);
    const client = await db.pool.connect();
    let broken: Error | undefined;
    try {
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
      if (!outcome.acquired) {
        log.info("another archiving run holds the lock; skipped");
        const verification = compareCounts(before, before);
        return {
          moved: 0,
          partitionsMoved: 0,
          batches: 0,
          verified: true,
          path: "none",
          cutoff: cutoff.toISOString(),
          fastPath: [],
          verification,
          durationMs: 0,
          rowsPerSecond: 0,
          longestBatchMs: 0,
          skipped: "another run holds the lock",
        };
      }
      return outcome.value;
    } catch (err) {
      broken = err as Error;
      throw err;
    } finally {
      client.release(broken);
    }
  },
});

/** Decides per month: fast path when its partition lies before the cutoff and holds only eligible rows. */
async function planMonths(client: pg.ClientBase, before: MonthCounts[], cutoff: Date, maxRows: number): Promise<MonthPlan[]> {
  const partitions = await listPartitions(client, "transactions");
  let budget = maxRows;
  return before.map((counts) => {
    const range = monthRange(monthFromKey(counts.month));
    const partition = partitions.find((candidate) => candidate.from?.getTime() === range.start.getTime() && candidate.to?.getTime() === range.end.getTime());
    let path: MonthPlan["path"] = "none";
    if (counts.eligible > 0 && budget > 0) {
      path = partition && range.end <= cutoff && counts.eligible === counts.live && counts.live <= budget ? "fast" : "batches";
      budget -= Math.min(budget, counts.eligible);
    }
    return { ...counts, path };
  });
}

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

/** Shrinks a batch that held its locks too long (in proportion, with 20% headroom), grows quick ones by half, within [100, batchSize]. */
export function nextBatchSize(current: number, batchMs: number, limits: { batchSize: number; maxBatchMs: number }): number {
  if (batchMs > limits.maxBatchMs) return Math.max(100, Math.floor((current * limits.maxBatchMs * 0.8) / batchMs));
  if (batchMs < limits.maxBatchMs / 2) return Math.min(limits.batchSize, Math.ceil(current * 1.5));
  return current;
}

function failVerification(log: Logger, verification: Verification, stage: string): never {
  const error = new ArchiveVerificationError(verification.mismatches, stage);
  log.error({ verification }, error.message);
  throw new UnrecoverableError(error.message);
}
