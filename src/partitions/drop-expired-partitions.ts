import type pg from "pg";
import { inClientTransaction } from "../lib/client-transaction.js";
import { listPartitions, type PartitionedTable, qualifiedName, tableSpec } from "./catalog.js";
import { addPeriods, periodStart } from "./period-bounds.js";

/**
 * Retention by whole partitions: every partition of `parent` whose range
 * ends on or before the start of the period `retentionDays` before `now` is
 * detached and dropped, one transaction per partition. Dropping a table
 * deletes no row one by one, so nothing is vacuumed afterwards and the audit
 * log's append-only trigger (row level) is not involved. The default
 * partition is never dropped; its rows belong to periods without a partition
 * and are moved out by the rescue step first.
 *
 * A partition is dropped only once all of it is older than the retention: a
 * daily table keeps between `retentionDays` and `retentionDays + 1` days.
 */
export async function dropExpiredPartitions(
  client: pg.ClientBase,
  parent: PartitionedTable,
  options: { now: Date; retentionDays: number; lockTimeoutMs?: number },
): Promise<string[]> {
  const spec = tableSpec(parent);
  const cutoff = periodStart(addPeriods(periodStart(options.now, "day"), -options.retentionDays, "day"), spec.granularity);
  const expired = (await listPartitions(client, parent)).filter((partition) => !partition.isDefault && partition.to !== null && partition.to <= cutoff);
  const dropped: string[] = [];
  for (const partition of expired) {
    await inClientTransaction(
      client,
      async () => {
        // Detach first: DROP of an attached partition takes the same lock, but
        // DETACH makes plain that only this partition leaves the parent.
        await client.query(`ALTER TABLE ${qualifiedName(parent)} DETACH PARTITION ${partition.sqlName}`);
        await client.query(`DROP TABLE ${partition.sqlName}`);
      },
      { lockTimeoutMs: options.lockTimeoutMs },
    );
    dropped.push(partition.name);
  }
  return dropped;
}
