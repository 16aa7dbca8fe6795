import type pg from "pg";
import { inClientTransaction } from "../lib/client-transaction.js";
import { quoteIdent } from "../lib/db.js";
import { DbjobsError } from "../lib/errors.js";
import { defaultPartitionOf, listPartitions, overlappingPartition, type PartitionedTable, type PartitionInfo } from "./catalog.js";
import { boundCheckName, monthBoundSql, monthCheckSql, monthPartitionName, monthRange } from "./month-bounds.js";
import { moveMonthOutOfDefault } from "./move-out-of-default.js";

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
 * Idempotent: a month some partition already covers is left alone.
 *
 * When the default partition holds no rows of that month (the usual case,
 * because partitions are made ahead of time), it is CREATE TABLE … PARTITION
 * OF, which gives the new table every index of the parent; it locks the
 * parent and the default ACCESS EXCLUSIVE for a catalog change and a scan of
 * the default.
 *
 * When the default does hold rows of the month, they move into the new
 * partition in the same transaction (move-out-of-default.ts), so they are
 * never lost or doubled: a failure at any step rolls everything back.
 *
 * Locks are taken parent first, then default: the order ATTACH itself uses,
 * so concurrent DDL queues instead of deadlocking. The default is locked
 * EXCLUSIVE before its rows are counted: writes to it wait, reads go on.
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

      const check = `CONSTRAINT ${quoteIdent(boundCheckName(name))} CHECK (${monthCheckSql(range)})`;
      const defaultPartition = defaultPartitionOf(partitions);
      let waiting = 0;
      if (defaultPartition) {
        // Returns how many rows of the month the default holds, counted once writes to it wait.
        const [, counted] = (await client.query(
          `LOCK TABLE ${quoteIdent(defaultPartition.name)} IN EXCLUSIVE MODE; SELECT count(*)::int AS n FROM ${quoteIdent(defaultPartition.name)} WHERE ${monthCheckSql(range)}`,
        )) as unknown as pg.QueryResult<{ n: number }>[];
        waiting = counted?.rows[0]?.n ?? 0;
      }

      if (!defaultPartition || waiting === 0) {
        await client.query(`CREATE TABLE ${quoteIdent(name)} PARTITION OF ${quoteIdent(parent)} (${check}) FOR VALUES ${monthBoundSql(range)}`);
        return { name, created: true, movedFromDefault: 0 };
      }
      const movedFromDefault = await moveMonthOutOfDefault(client, { parent, defaultPartition: defaultPartition.name, name, range, check });
      return { name, created: true, movedFromDefault };
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
