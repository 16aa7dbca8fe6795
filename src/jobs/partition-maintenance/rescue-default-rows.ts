import type pg from "pg";
import { coerceError } from "../../lib/errors.js";
import type { Logger } from "../../lib/logger.js";
import { isLockNotAvailable, isWriteConflict } from "../../lib/retry.js";
import type { PartitionedTable } from "../../partitions/catalog.js";
import { createPartition, PartitionNameTakenError } from "../../partitions/create-partition.js";
import { defaultPartitionRows } from "../../partitions/default-partition-rows.js";
import { periodFromKey } from "../../partitions/period-bounds.js";

/** A month whose rows this run left in the default partition, and why. */
export interface MonthNotMoved {
  /** "YYYY-MM" */
  month: string;
  rows: number;
  reason: string;
}

export interface RescueOutcome {
  /** Partitions created for months found in the default partition. */
  created: string[];
  /** Rows moved out of the default partition. */
  moved: number;
  notMoved: MonthNotMoved[];
}

export interface RescueOptions {
  /** How long each month's transaction may wait for a lock. */
  lockTimeoutMs: number;
  log: Logger;
  /** Called after each month, moved or not. */
  onMonth?(done: number, months: number, moved: number): Promise<void>;
}

/**
 * Gives every month that has rows in the default partition a partition of its
 * own, whatever the month: backdated rows of a past month, rows of the months
 * being premade, far-future dates. Each month moves in one transaction of its
 * own (createPartition), so a failure costs that month only and never a
 * row; the locks are described in src/partitions/move-out-of-default.ts.
 *
 * The largest month goes first: every later month's ATTACH scans what is left
 * in the default under its ACCESS EXCLUSIVE lock, so the big scan is paid once.
 *
 * A month whose locks were not granted in time (or that kept deadlocking, or
 * whose partition name is taken) stays in the default and is reported in
 * `notMoved`; the other months still move. Anything else fails the run, which
 * BullMQ retries. Running it again, or twice at once, is safe: a month another
 * session gave a partition is found covered and left alone.
 */
export async function rescueDefaultRows(client: pg.ClientBase, table: PartitionedTable, options: RescueOptions): Promise<RescueOutcome> {
  const months = (await defaultPartitionRows(client, table)).sort((a, b) => b.rows - a.rows || a.month.localeCompare(b.month));
  const outcome: RescueOutcome = { created: [], moved: 0, notMoved: [] };
  for (const [index, month] of months.entries()) {
    try {
      const result = await createPartition(client, table, periodFromKey(month.month), { lockTimeoutMs: options.lockTimeoutMs });
      // Not created: another session gave the month its partition meanwhile, or a partition that is not
      // monthly covers part of it; the rows left in the default then show in the run's final count.
      if (result.created) {
        outcome.created.push(result.name);
        outcome.moved += result.movedFromDefault;
        options.log.info({ partition: result.name, movedFromDefault: result.movedFromDefault }, "rows moved out of the default partition");
      }
    } catch (err) {
      if (!isLockNotAvailable(err) && !isWriteConflict(err) && !(err instanceof PartitionNameTakenError)) throw err;
      const reason = isLockNotAvailable(err) ? `its locks were not granted within ${options.lockTimeoutMs} ms` : coerceError(err).message;
      options.log.warn({ month: month.month, rows: month.rows, err }, "rows of a month left in the default partition");
      outcome.notMoved.push({ ...month, reason });
    }
    await options.onMonth?.(index + 1, months.length, outcome.moved);
  }
  return outcome;
}
