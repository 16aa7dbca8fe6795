import { z } from "zod";
import type { DefaultMonthRows } from "../../partitions/default-partition-rows.js";
import { defineContract } from "../../queues/contract.js";

export type { DefaultMonthRows };

export interface PartitionMaintenanceResult {
  /** Partitions created by this run, for months found in the default partition and premade ones, in month order, e.g. ["transactions_2026_12"]. */
  created: string[];
  /** Rows moved out of the default partition into partitions created by this run, whatever their month. */
  movedFromDefault: number;
  /** Rows still in the default partition after the run. */
  defaultRows: number;
  /** Those rows per UTC month, so an operator sees which months lack a partition. */
  defaultRowsByMonth: DefaultMonthRows[];
  /** Present while the default partition still holds rows: names their months (with why, when known) and the command that moves them. */
  warning?: string;
  /** Present when another run held the lock and this one did nothing. */
  skipped?: string;
}

export const partitionMaintenancePayload = z
  .object({
    /** The partitioned table. Only names on this list ever reach DDL. @defaultValue "transactions" */
    table: z.enum(["transactions"], { error: 'must be "transactions"' }).default("transactions"),
    /** Months to premake after the current one. @defaultValue 3 */
    monthsAhead: z.number().int().min(0).max(36).default(3),
  })
  .strict();

export type PartitionMaintenancePayload = z.output<typeof partitionMaintenancePayload>;

export const partitionMaintenanceContract = defineContract<PartitionMaintenanceResult>()({
  name: "partition-maintenance",
  payload: partitionMaintenancePayload,
  worker: { concurrency: 1 },
});
