import { lockNames, withTryAdvisoryLock } from "../../lib/advisory-locks.js";
import { quoteIdent } from "../../lib/db.js";
import { withSession } from "../../lib/session.js";
import { createMonthPartition } from "../../partitions/create-month-partition.js";
import { defaultPartitionRows } from "../../partitions/default-partition-rows.js";
import { addUtcMonths, utcMonthStart } from "../../partitions/month-bounds.js";
import type { JobHandler } from "../../queues/job-context.js";
import type { PartitionMaintenanceResult, partitionMaintenanceContract } from "./contract.js";

/** How long DDL may wait for a table lock before this run fails and BullMQ retries it. */
const lockTimeoutMs = 5000;

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
export const handlePartitionMaintenance: JobHandler<typeof partitionMaintenanceContract> = async (payload, { db, log, reportProgress, services }) => {
  const { table, monthsAhead } = payload;
  return withSession(db.pool, async ({ client }): Promise<PartitionMaintenanceResult> => {
    const outcome = await withTryAdvisoryLock(client, lockNames.partitionMaintenance(table), async () => {
      const created: string[] = [];
      let movedFromDefault = 0;
      const first = utcMonthStart(services.now());
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
  });
};
