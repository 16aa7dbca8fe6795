import { lockNames, withTryAdvisoryLock } from "../../lib/advisory-locks.js";
import { quoteIdent } from "../../lib/db.js";
import { withSession } from "../../lib/session.js";
import { createMonthPartition } from "../../partitions/create-month-partition.js";
import { type DefaultMonthRows, defaultPartitionRows } from "../../partitions/default-partition-rows.js";
import { addUtcMonths, utcMonthStart } from "../../partitions/month-bounds.js";
import type { JobHandler } from "../../queues/job-context.js";
import type { PartitionMaintenanceResult, partitionMaintenanceContract } from "./contract.js";
import { type MonthNotMoved, rescueDefaultRows } from "./rescue-default-rows.js";

/** How long each month's DDL may wait for a table lock. */
const lockTimeoutMs = 5000;

/**
 * partition-maintenance keeps every row of `transactions` (seed 000, "Table
 * Partitioning") in its month's partition, and the partitions ahead of the
 * rows:
 *
 *  1. Rescue: every month that has rows in the default partition, past,
 *     current or future, gets its partition, and its rows move there in one
 *     transaction per month (rescue-default-rows.ts). A month whose locks are
 *     not granted in time stays in the default for the next run.
 *  2. Premake: the partitions from the current UTC month to `monthsAhead`
 *     months ahead, as pg_partman's premake does, so rows never reach the
 *     default in the first place.
 *  3. ANALYZE the parent, and warn, naming the months and the command to run,
 *     while the default still holds rows.
 *
 * Idempotent: months that already have a partition are left alone. Two runs
 * at once do not queue on table locks: the second sees the advisory lock
 * taken and returns "skipped".
 */
export const handlePartitionMaintenance: JobHandler<typeof partitionMaintenanceContract> = async (payload, { db, log, reportProgress, services }) => {
  const { table, monthsAhead } = payload;
  return withSession(db.pool, async ({ client }): Promise<PartitionMaintenanceResult> => {
    const outcome = await withTryAdvisoryLock(client, lockNames.partitionMaintenance(table), async () => {
      const rescue = await rescueDefaultRows(client, table, {
        lockTimeoutMs,
        log,
        onMonth: (done, months, moved) => reportProgress({ phase: "rescue", monthsDone: done, months, movedFromDefault: moved }),
      });

      const created = [...rescue.created];
      let movedFromDefault = rescue.moved;
      const first = utcMonthStart(services.now());
      for (let offset = 0; offset <= monthsAhead; offset++) {
        const result = await createMonthPartition(client, table, addUtcMonths(first, offset), { lockTimeoutMs });
        if (result.created) {
          created.push(result.name);
          movedFromDefault += result.movedFromDefault;
          log.info({ partition: result.name, movedFromDefault: result.movedFromDefault }, "partition created");
        }
        await reportProgress({ phase: "premake", monthsDone: offset + 1, months: monthsAhead + 1, created: created.length, movedFromDefault });
      }
      // Autovacuum analyzes leaf partitions but never a partitioned parent,
      // so the planner's whole-table estimates go stale unless we do it.
      await client.query(`ANALYZE ${quoteIdent(table)}`);
      // Names are <table>_YYYY_MM, so sorting them sorts the months.
      return { created: created.sort(), movedFromDefault, notMoved: rescue.notMoved };
    });

    const defaultRowsByMonth = await defaultPartitionRows(client, table);
    const defaultRows = defaultRowsByMonth.reduce((sum, month) => sum + month.rows, 0);
    const warning = defaultRows > 0 ? defaultRowsWarning(table, defaultRowsByMonth, outcome.acquired ? outcome.value.notMoved : []) : undefined;
    if (warning) log.warn({ defaultRows, defaultRowsByMonth }, warning);

    if (!outcome.acquired) {
      log.info("another partition-maintenance run holds the lock; skipped");
      return { created: [], movedFromDefault: 0, defaultRows, defaultRowsByMonth, ...(warning ? { warning } : {}), skipped: "another run holds the lock" };
    }
    const { created, movedFromDefault } = outcome.value;
    log.info({ created, movedFromDefault, defaultRows }, "partition maintenance done");
    return { created, movedFromDefault, defaultRows, defaultRowsByMonth, ...(warning ? { warning } : {}) };
  });
};

/** Names each month left in the default (with why, when this run knows) and the command that moves them. */
function defaultRowsWarning(table: string, byMonth: DefaultMonthRows[], notMoved: MonthNotMoved[]): string {
  const months = byMonth.map((month) => {
    const reason = notMoved.find((entry) => entry.month === month.month)?.reason;
    return `${month.month} (${month.rows} rows${reason ? `: ${reason}` : ""})`;
  });
  const total = byMonth.reduce((sum, month) => sum + month.rows, 0);
  return (
    `${total} rows remain in the default partition of "${table}", months ${months.join(", ")}. ` +
    `Move them into their months' partitions with: npx dbjobs enqueue partition-maintenance --data '{"table":"${table}"}' --wait ` +
    "(each month moves in a transaction of its own; a month whose locks are not granted is left for the next run). " +
    "Until then every new partition rescans the default."
  );
}
