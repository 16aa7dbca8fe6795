import { z } from "zod";
import type { BloatMethod } from "../../db-catalog/index-bloat.js";
import { internalSchemas } from "../../db-catalog/internal-tables.js";
import { defineContract } from "../../queues/contract.js";

// A bare name is a table of schema public; an internal schema's table is named with its schema ("bullmq.jobs").
const tableNamePattern = new RegExp(`^(?:(?:${internalSchemas.join("|")})\\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}$`);

const tableName = z
  .string()
  .regex(tableNamePattern, {
    error: (issue) =>
      `${JSON.stringify(issue.input)} is not a table name: use one of the application's tables in schema public (letters, digits, _ or $, at most 63 characters, e.g. "invoices"), or an internal table by its schema (${internalSchemas.map((schema) => `"${schema}.<table>"`).join(", ")})`,
  })
  .refine((name) => !name.toLowerCase().startsWith("pg_"), {
    error: (issue) => `${JSON.stringify(issue.input)} is a system catalog name (pg_*); those are never maintained, name one of the application's tables`,
  });

export const dbMaintenancePayload = z
  .object({
    /** ANALYZE tables past their threshold and partitioned parents. @defaultValue true */
    analyze: z.boolean().default(true),
    /** REINDEX CONCURRENTLY indexes past minBloatRatio. @defaultValue false */
    reindex: z.boolean().default(false),
    /**
     * Only these tables (a partitioned parent includes its partitions); internal tables such as
     * `_prisma_migrations` are maintained only when named here.
     * @defaultValue every application table in schema public
     */
    tables: z.array(tableName).min(1).max(1000).optional(),
    /** Reindex when actual size / fresh-build size reaches this. @defaultValue 1.5 */
    minBloatRatio: z.number().min(1.1).max(10).default(1.5),
    /** List the actions with reasons and estimates; change nothing. @defaultValue false */
    dryRun: z.boolean().default(false),
    /** lock_timeout of every maintenance statement. @defaultValue 2000 */
    lockTimeoutMs: z.number().int().min(100).max(60_000).default(2000),
  })
  .strict();

export type DbMaintenancePayload = z.output<typeof dbMaintenancePayload>;

export interface PlannedAction {
  action: "drop-invalid" | "analyze" | "reindex";
  target: string;
  reason: string;
  estimate: Record<string, number | string | null>;
}

export interface DbMaintenanceResult {
  dryRun: boolean;
  /** How index bloat was estimated; null when reindex was off. */
  bloatMethod: BloatMethod | null;
  analyzed: string[];
  /** Sizes in bytes; `after` is null when the index could not be measured right after (lock busy). */
  reindexed: { index: string; table: string; before: number; after: number | null; bloatRatio: number }[];
  droppedInvalid: string[];
  skipped: { name: string; reason: string }[];
  /** Every action this run decided on, with its reason and estimate (what a dry run would do). */
  planned: PlannedAction[];
}

// Apart from a table not ours (never retried), only a lost session fails a run (per-object errors are skipped), and
// a run is safe to repeat (it first drops what a cut-short build left): 5 attempts, backoff 1, 2, 4, 8 s, outlast a failover.
export const dbMaintenanceContract = defineContract<DbMaintenanceResult>()({
  name: "db-maintenance",
  payload: dbMaintenancePayload,
  worker: { concurrency: 1, lockDurationMs: 60_000 },
  jobOptions: { attempts: 5 },
});
