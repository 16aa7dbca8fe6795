import { z } from "zod";
import { lockNames, withTryAdvisoryLock } from "../lib/advisory-locks.js";
import { quoteIdent } from "../lib/db.js";
import { addUtcMonths, createMonthPartition, type DefaultMonthRows, defaultPartitionRows, utcMonthStart } from "../lib/partitions.js";
import { defineJob } from "../queues/job-definition.js";

/**
 * partition-maintenance: premakes the monthly partitions of `transactions`
 * (seed 000, "Table Partitioning") from the current UTC month to
 * `monthsAhead` months ahead, the way pg_partman's premake does, without its
 * two classic failures: a new partition never fails because the default
 * partition already holds rows of that month (they are moved into it, in the
 * same transaction), and partitions exist before the rows arrive.
 *
 * Idempotent: months that already have a partition are left alone. Two runs
 * at once do not queue on table locks: the second sees the advisory lock
 * taken and returns "skipped".
 */
export const partitionMaintenancePayload = z
  .object({
    /** The partitioned table. Only names on this list ever reach DDL. @defaultValue "transactions" */
    table: z.enum(["transactions"], { error: 'must be "transactions"' }).optional(),
    /** Months to premake after the current one. @defaultValue 3 */
    monthsAhead: z.number().int().min(0).max(36).optional(),
  })
  .strict();

export type PartitionMaintenancePayload = z.output<typeof partitionMaintenancePayload>;

export interface PartitionMaintenanceResult {
  /** Partitions created by this run, e.g. ["transactions_2026_12"]. */
  created: string[];
  /** Rows moved out of the default partition into partitions created by this run. */
  movedFromDefault: number;
  /** Rows still in the default partition after the run. */
  defaultRows: number;
  /** Those rows per UTC month, so an operator sees which months lack a partition. */
  defaultRowsByMonth: DefaultMonthRows[];
  /** Present while the default partition holds rows. */
  warning?: string;
  /** Present when another run held the lock and this one did nothing. */
  skipped?: string;
}

/** How long DDL may wait for a table lock before this run fails and BullMQ retries it. */
const lockTimeoutMs = 5000;

export const partitionMaintenanceJob = defineJob({
  queue: "partition-maintenance",
  payloadSchema: partitionMaintenancePayload,

  async handle(payload, { db, log, reportProgress }): Promise<PartitionMaintenanceResult> {
    const table = payload.table ?? "transactions";
    const monthsAhead = payload.monthsAhead ?? 3;
    const client = await db.pool.connect();
    let broken: Error | undefined;
    try {
      const outcome = await withTryAdvisoryLock(client, lockNames.partitionMaintenance(table), async () => {
        const created: string[] = [];
        let movedFromDefault = 0;
        const first = utcMonthStart(new Date());
        for (let offset = 0; offset <= monthsAhead; offset++) {
          const result = await createMonthPartition(client, table, addUtcMonths(first, offset), { lockTimeoutMs });
          if (result.created) {
            created.push(result.name);
            movedFromDefault += result.movedFromDefault;
            log.info({ partition: result.name, movedFromDefault: result.movedFromDefault }, "partition created");
          }
          await reportProgress({ monthsDone: offset + 1, months: monthsAhead + 1, created: created.length, movedFromDefault });
        }
        // Autovacuum analyzes leaf partitions but never a partitioned parent,
        // so the planner's whole-table estimates go stale unless we do it.
        await client.query(`ANALYZE ${quoteIdent(table)}`);
        return { created, movedFromDefault };
      });

      const defaultRowsByMonth = await defaultPartitionRows(client, table);
      const defaultRows = defaultRowsByMonth.reduce((sum, month) => sum + month.rows, 0);
      const warning =
        defaultRows > 0
          ? `${defaultRows} rows sit in the default partition of "${table}" (months ${defaultRowsByMonth.map((month) => month.month).join(", ")}); ` +
            "they will be moved when those months get a partition (raise monthsAhead to cover them), and until then every new partition rescans the default."
          : undefined;
      if (warning) log.warn({ defaultRows, defaultRowsByMonth }, warning);

      if (!outcome.acquired) {
        log.info("another partition-maintenance run holds the lock; skipped");
        return { created: [], movedFromDefault: 0, defaultRows, defaultRowsByMonth, ...(warning ? { warning } : {}), skipped: "another run holds the lock" };
      }
      const result = { ...outcome.value, defaultRows, defaultRowsByMonth, ...(warning ? { warning } : {}) };
      log.info({ created: result.created, movedFromDefault: result.movedFromDefault, defaultRows }, "partition maintenance done");
      return result;
    } catch (err) {
      broken = err as Error;
      throw err;
    } finally {
      // A connection that failed mid-transaction is discarded, never reused.
      client.release(broken);
    }
  },
});
