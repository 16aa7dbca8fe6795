import type pg from "pg";
import { inClientTransaction } from "../lib/client-transaction.js";
import { quoteIdent } from "../lib/db.js";
import { DbjobsError } from "../lib/errors.js";
import { defaultPartitionOf, listPartitions, overlappingPartition, type PartitionedTable, type PartitionInfo } from "./catalog.js";
import { boundCheckName, monthBoundSql, monthCheckSql, monthPartitionName, monthRange } from "./month-bounds.js";

/**
 * Creating the partition of one UTC month.
 *
 * Every monthly partition made here also carries a CHECK constraint equal to
 * its partition bound. PostgreSQL skips the validation scan of ATTACH
 * PARTITION when such a constraint proves the bound, so a month can later be
 * detached from `transactions` and attached to `transactions_archive` in
 * constant time (the archiving fast path).
 */

export class PartitionNameTakenError extends DbjobsError {
  constructor(name: string, parent: string) {
    super(
      "DBJOBS_PARTITION_NAME_TAKEN",
      `A table named "${name}" exists but is not a partition of "${parent}". Rename or drop it, then run partition-maintenance again.`,
    );
  }
}

export interface CreateMonthPartitionResult {
  name: string;
  /** False when a partition already covered the month (nothing was done). */
  created: boolean;
  /** Rows moved out of the default partition into the new one. */
  movedFromDefault: number;
}

/**
 * Creates the partition of `parent` for one UTC month, in one transaction.
 *
 * When the default partition holds no rows of that month (the usual case,
 * because partitions are made ahead of time), it is CREATE TABLE … PARTITION
 * OF, which gives the new table every index of the parent.
 *
 * When it does hold rows, CREATE … PARTITION OF would fail ("updated partition
 * constraint for default partition would be violated"), which is pg_partman's
 * most reported problem. Then, inside the same transaction and with the
 * default partition locked against writes: create a standalone table like the
 * parent, copy the month's rows into it, delete them from the default, and
 * ATTACH it. ATTACH builds the parent's indexes on it and clones the triggers
 * and foreign keys; it also rescans the default (now free of that month).
 * A failure at any step rolls everything back, so rows are never lost or
 * doubled. Detaching and reattaching the default instead would rescan the
 * whole default against every partition and take the parent's strongest lock
 * for longer.
 *
 * Locks are taken parent first, then default: the order ATTACH itself uses,
 * so concurrent DDL queues instead of deadlocking.
 */
export async function createMonthPartition(
  client: pg.ClientBase,
  parent: PartitionedTable,
  month: Date,
  options: { lockTimeoutMs?: number } = {},
): Promise<CreateMonthPartitionResult> {
  const range = monthRange(month);
  const name = monthPartitionName(parent, range.start);
  return inClientTransaction(
    client,
    async () => {
      await client.query(`LOCK TABLE ONLY ${quoteIdent(parent)} IN SHARE UPDATE EXCLUSIVE MODE`);
      const partitions = await listPartitions(client, parent);
      if (overlappingPartition(partitions, range)) return { name, created: false, movedFromDefault: 0 };
      const { rows: existing } = await client.query<{ oid: string | null }>("SELECT to_regclass($1)::text AS oid", [quoteIdent(name)]);
      if (existing[0]?.oid) throw new PartitionNameTakenError(name, parent);

      const bound = monthBoundSql(range);
      const check = `CONSTRAINT ${quoteIdent(boundCheckName(name))} CHECK (${monthCheckSql(range)})`;
      const defaultPartition = defaultPartitionOf(partitions);
      let waiting = 0;
      if (defaultPartition) {
        await client.query(`LOCK TABLE ${quoteIdent(defaultPartition.name)} IN ACCESS EXCLUSIVE MODE`);
        // Takes the month's bounds. Returns whether the default holds any of its rows.
        const { rows } = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${quoteIdent(defaultPartition.name)} WHERE "createdAt" >= $1 AND "createdAt" < $2`,
          [range.start, range.end],
        );
        waiting = rows[0]?.n ?? 0;
      }

      if (waiting === 0) {
        await client.query(`CREATE TABLE ${quoteIdent(name)} PARTITION OF ${quoteIdent(parent)} (${check}) FOR VALUES ${bound}`);
        return { name, created: true, movedFromDefault: 0 };
      }

      const defaultName = quoteIdent((defaultPartition as PartitionInfo).name);
      await client.query(`CREATE TABLE ${quoteIdent(name)} (LIKE ${quoteIdent(parent)} INCLUDING DEFAULTS, ${check})`);
      // Takes the month's bounds; copies the default's rows of that month, then removes them there.
      const copied = await client.query(`INSERT INTO ${quoteIdent(name)} SELECT * FROM ${defaultName} WHERE "createdAt" >= $1 AND "createdAt" < $2`, [
        range.start,
        range.end,
      ]);
      const deleted = await client.query(`DELETE FROM ${defaultName} WHERE "createdAt" >= $1 AND "createdAt" < $2`, [range.start, range.end]);
      if (copied.rowCount !== deleted.rowCount) {
        throw new DbjobsError(
          "DBJOBS_PARTITION_MOVE_MISMATCH",
          `Copied ${copied.rowCount} rows but deleted ${deleted.rowCount} from ${defaultPartition?.name}; rolled back. Rerun partition-maintenance.`,
        );
      }
      await client.query(`ALTER TABLE ${quoteIdent(parent)} ATTACH PARTITION ${quoteIdent(name)} FOR VALUES ${bound}`);
      return { name, created: true, movedFromDefault: copied.rowCount ?? 0 };
    },
    { lockTimeoutMs: options.lockTimeoutMs },
  );
}

/** Adds the bound CHECK constraint to a partition made elsewhere (one validating scan), so a later ATTACH skips its scan. */
export async function ensureBoundCheck(client: pg.ClientBase, partition: PartitionInfo): Promise<void> {
  if (!partition.from || !partition.to) return;
  const { rows } = await client.query<{ found: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::text::regclass AND conname = $2 AND convalidated) AS found",
    [quoteIdent(partition.name), boundCheckName(partition.name)],
  );
  if (rows[0]?.found) return;
  await client.query(
    `ALTER TABLE ${quoteIdent(partition.name)} ADD CONSTRAINT ${quoteIdent(boundCheckName(partition.name))} CHECK (${monthCheckSql({ start: partition.from, end: partition.to })})`,
  );
}
