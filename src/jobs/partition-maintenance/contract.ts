import { z } from "zod";
import type { DefaultMonthRows } from "../../partitions/default-partition-rows.js";
import { defineContract } from "../../queues/contract.js";

/** The tables partition-maintenance keeps (transactions_archive gets its months from archiving). */
export const maintainedTables = ["transactions", "dbjobs.job_history", "dbjobs.audit_log"] as const;

export type { DefaultMonthRows };

export interface PartitionMaintenanceResult {
  /** Partitions created by this run, for periods found in the default partition and premade ones, in period order, e.g. ["transactions_2026_12"]. */
  created: string[];
  /** Partitions dropped whole because all of their range is older than HISTORY_RETENTION_DAYS (tables with a retention only). */
  dropped: string[];
  /** Rows moved out of the default partition into partitions created by this run, whatever their month. */
  movedFromDefault: number;
  /** Rows still in the default partition after the run. */
  defaultRows: number;
  /** Those rows per UTC month ("YYYY-MM"; per day, "YYYY-MM-DD", for daily tables), so an operator sees which periods lack a partition. */
  defaultRowsByMonth: DefaultMonthRows[];
  /** Present while the default partition still holds rows: names their months (with why, when known) and the command that moves them. */
  warning?: string;
  /** Present when another run held the lock and this one did nothing. */
  skipped?: string;
}

export const partitionMaintenancePayload = z
  .object({
    /** The partitioned table. Only names on this list ever reach DDL. @defaultValue "transactions" */
    table: z.enum(maintainedTables, { error: `must be one of ${maintainedTables.map((name) => `"${name}"`).join(", ")}` }).default("transactions"),
    /** Months to premake after the current one, for monthly tables. @defaultValue 3 */
    monthsAhead: z.number().int().min(0).max(36).default(3),
    /** Days to premake after the current one, for daily tables (the job history, the audit log). @defaultValue 7 */
    daysAhead: z.number().int().min(0).max(366).default(7),
  })
  .strict();

export type PartitionMaintenancePayload = z.output<typeof partitionMaintenancePayload>;

export const partitionMaintenanceContract = defineContract<PartitionMaintenanceResult>()({
  name: "partition-maintenance",
  payload: partitionMaintenancePayload,
  worker: { concurrency: 1 },
});
