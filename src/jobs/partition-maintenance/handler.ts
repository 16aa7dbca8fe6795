import { lockNames, withTryAdvisoryLock } from "../../lib/advisory-locks.js";
import { withSession } from "../../lib/session.js";
import { qualifiedName, tableSpec } from "../../partitions/catalog.js";
import { createPartition } from "../../partitions/create-partition.js";
import { type DefaultMonthRows, defaultPartitionRows } from "../../partitions/default-partition-rows.js";
import { dropExpiredPartitions } from "../../partitions/drop-expired-partitions.js";
import { addPeriods, periodStart } from "../../partitions/period-bounds.js";
import type { JobHandler } from "../../queues/job-context.js";
import type { PartitionMaintenanceResult, partitionMaintenanceContract } from "./contract.js";
import { type MonthNotMoved, rescueDefaultRows } from "./rescue-default-rows.js";

/** How long each month's DDL may wait for a table lock. */
const lockTimeoutMs = 5000;

/**
 * partition-maintenance keeps every row of a partitioned table we own
 * (`transactions`, seed 000 "Table Partitioning", by month; the job history
 * and the audit log by day; src/partitions/catalog.ts) in its period's
 * partition, and the partitions ahead of the rows:
 *
 *  1. Rescue: every period that has rows in the default partition, past,
 *     current or future, gets its partition, and its rows move there in one
 *     transaction per period (rescue-default-rows.ts). A period whose locks
 *     are not granted in time stays in the default for the next run.
 *  2. Premake: the partitions from the current UTC period to `monthsAhead`
 *     months (or `daysAhead` days) ahead, as pg_partman's premake does, so
 *     rows never reach the default in the first place.
 *  3. Retention, for tables that have one: partitions wholly older than
 *     HISTORY_RETENTION_DAYS are dropped (drop-expired-partitions.ts).
 *  4. ANALYZE the parent, and warn, naming the periods and the command to
 *     run, while the default still holds rows.
 *
 * Idempotent: months that already have a partition are left alone. Two runs
 * at once do not queue on table locks: the second sees the advisory lock
 * taken and returns "skipped".
 */
export const handlePartitionMaintenance: JobHandler<typeof partitionMaintenanceContract> = async (payload, { db, log, reportProgress, services, config }) => {
  const { table } = payload;
  const spec = tableSpec(table);
  const ahead = spec.granularity === "month" ? payload.monthsAhead : payload.daysAhead;
  return withSession(db, async ({ client }): Promise<PartitionMaintenanceResult> => {
    const outcome = await withTryAdvisoryLock(client, lockNames.partitionMaintenance(table), async () => {
      const rescue = await rescueDefaultRows(client, table, {
        lockTimeoutMs,
        log,
        onMonth: (done, months, moved) => reportProgress({ phase: "rescue", monthsDone: done, months, movedFromDefault: moved }),
      });

      const created = [...rescue.created];
      let movedFromDefault = rescue.moved;
      const now = services.now();
      const first = periodStart(now, spec.granularity);
      for (let offset = 0; offset <= ahead; offset++) {
        const result = await createPartition(client, table, addPeriods(first, offset, spec.granularity), { lockTimeoutMs });
        if (result.created) {
          created.push(result.name);
          movedFromDefault += result.movedFromDefault;
          log.info({ partition: result.name, movedFromDefault: result.movedFromDefault }, "partition created");
        }
        await reportProgress({ phase: "premake", monthsDone: offset + 1, months: ahead + 1, created: created.length, movedFromDefault });
      }
      const dropped =
        spec.retention === "history" ? await dropExpiredPartitions(client, table, { now, retentionDays: config.HISTORY_RETENTION_DAYS, lockTimeoutMs }) : [];
      if (dropped.length > 0) log.info({ dropped, retentionDays: config.HISTORY_RETENTION_DAYS }, "partitions past the retention dropped");
      // Autovacuum analyzes leaf partitions but never a partitioned parent,
      // so the planner's whole-table estimates go stale unless we do it.
      await client.query(`ANALYZE ${qualifiedName(table)}`);
      // Names are <table>_YYYY_MM(_DD), so sorting them sorts the periods.
      return { created: created.sort(), dropped, movedFromDefault, notMoved: rescue.notMoved };
    });

    const defaultRowsByMonth = await defaultPartitionRows(client, table);
    const defaultRows = defaultRowsByMonth.reduce((sum, month) => sum + month.rows, 0);
    const warning = defaultRows > 0 ? defaultRowsWarning(table, defaultRowsByMonth, outcome.acquired ? outcome.value.notMoved : []) : undefined;
    if (warning) log.warn({ defaultRows, defaultRowsByMonth }, warning);

    if (!outcome.acquired) {
      log.info("another partition-maintenance run holds the lock; skipped");
      return {
        created: [],
        dropped: [],
        movedFromDefault: 0,
        defaultRows,
        defaultRowsByMonth,
        ...(warning ? { warning } : {}),
        skipped: "another run holds the lock",
      };
    }
    const { created, dropped, movedFromDefault } = outcome.value;
    log.info({ created, dropped, movedFromDefault, defaultRows }, "partition maintenance done");
    return { created, dropped, movedFromDefault, defaultRows, defaultRowsByMonth, ...(warning ? { warning } : {}) };
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
