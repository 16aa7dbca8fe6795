import { z } from "zod";
import { defineContract } from "../../queues/contract.js";

/** The archivable states. A row in any other state may still change. */
export const finalStatuses = ["COMPLETED", "CANCELLED", "FAILED"] as const;
export type FinalStatus = (typeof finalStatuses)[number];

export const archivingPayload = z
  .object({
    /** Rows created more than this many years ago (UTC) are eligible. @defaultValue 7 */
    olderThanYears: z.number().int().min(1).max(100).default(7),
    /** Final states to archive. @defaultValue ["COMPLETED", "CANCELLED"] */
    statuses: z
      .array(z.enum(finalStatuses, { error: `must be one of ${finalStatuses.join(", ")} (only final states are archived)` }))
      .min(1)
      .default(["COMPLETED", "CANCELLED"]),
    /** Rows per batch statement. @defaultValue 5000 */
    batchSize: z.number().int().min(100).max(50_000).default(5000),
    /**
     * Longest a batch should hold its row locks. A batch slower than this
     * makes the next ones smaller (never under 100 rows); quick batches grow
     * back to batchSize. @defaultValue 300
     */
    maxBatchMs: z.number().int().min(10).max(60_000).default(300),
    /** Stop after moving this many rows (whole partitions count in full). Absent: no limit. */
    maxRows: z.number().int().min(1).optional(),
    /** Report the counts per month and what would move; change nothing. @defaultValue false */
    dryRun: z.boolean().default(false),
  })
  .strict();

export type ArchivingPayload = z.output<typeof archivingPayload>;

/**
 * One UTC month before the cutoff. Moving a row never changes its month, so
 * live + archived per month is invariant under archiving.
 */
export interface MonthCounts {
  /** "YYYY-MM", UTC. */
  month: string;
  live: number;
  archived: number;
  /** Live rows in a chosen final state with no retry scheduled. */
  eligible: number;
}

export interface MonthPlan extends MonthCounts {
  /** How this month's eligible rows move (or would move). */
  path: "fast" | "batches" | "none";
}

/** What the fast path (a whole partition moved by DETACH/ATTACH) did for one month. */
export type FastPathOutcome =
  | { taken: true; partition: string; archivedAs: string; rows: number; mergedFromArchive: number; lockMs: number }
  | { taken: false; partition: string; reason: string };

export interface VerificationMismatch {
  month: string;
  /** live + archived before the run. */
  before: number;
  /** live + archived now. */
  after: number;
}

export interface Verification {
  verified: boolean;
  months: number;
  /** live + archived over every month checked, before and after. */
  rowsBefore: number;
  rowsAfter: number;
  mismatches: VerificationMismatch[];
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

// Long runs: the lock is renewed while the job runs; one run at a time per process (an advisory lock covers the rest).
export const archivingContract = defineContract<ArchivingResult | ArchivingDryRunResult>()({
  name: "archiving",
  payload: archivingPayload,
  worker: { concurrency: 1, lockDurationMs: 60_000 },
});
