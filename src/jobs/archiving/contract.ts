import { z } from "zod";
import { defineContract } from "../../queues/contract.js";
import type { ArchivingDryRunResult, ArchivingResult } from "../archiving.js";

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
    /** Stop after moving this many rows (whole partitions count in full). @defaultValue no limit */
    maxRows: z.number().int().min(1).optional(),
    /** Report the counts per month and what would move; change nothing. @defaultValue false */
    dryRun: z.boolean().default(false),
  })
  .strict();

export type ArchivingPayload = z.output<typeof archivingPayload>;

// Long runs: the lock is renewed while the job runs; one run at a time per process (an advisory lock covers the rest).
export const archivingContract = defineContract<ArchivingResult | ArchivingDryRunResult>()({
  name: "archiving",
  payload: archivingPayload,
  worker: { concurrency: 1, lockDurationMs: 60_000 },
});
