import type pg from "pg";
import { inClientTransaction } from "../lib/client-transaction.js";
import { quoteIdent } from "../lib/db.js";
import { DbjobsError } from "../lib/errors.js";
import { defaultPartitionOf, listPartitions, overlappingPartition, type PartitionedTable, type PartitionInfo, qualifiedName, tableSpec } from "./catalog.js";
import { movePeriodOutOfDefault } from "./move-out-of-default.js";
import { boundCheckName, periodPartitionName, periodRange, rangeBoundSql, rangeCheckSql } from "./period-bounds.js";

/**
 * Creating the partition of one UTC month or day (the table's granularity,
 * catalog.ts).
 *
 * Every partition made here also carries a CHECK constraint equal to
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

export interface CreatePartitionResult {
  name: string;
  /** False when a partition already covered the month (nothing was done). */
  created: boolean;
  /** Rows moved out of the default partition into the new one. */
  movedFromDefault: number;
}

/**
 * Creates the partition of `parent` for the UTC month or day holding
 * `period`, in one transaction. Idempotent: a period some partition already
 * covers is left alone.
 *
 * When the default partition holds no rows of that period (the usual case,
 * because partitions are made ahead of time), it is CREATE TABLE … PARTITION
 * OF, which gives the new table every index of the parent; it locks the
 * parent and the default ACCESS EXCLUSIVE for a catalog change and a scan of
 * the default.
 *
 * When the default does hold rows of the period, they move into the new
 * partition in the same transaction (move-out-of-default.ts), so they are
 * never lost or doubled: a failure at any step rolls everything back.
 *
 * Locks are taken parent first, then default: the order ATTACH itself uses,
 * so concurrent DDL queues instead of deadlocking. The default is locked
 * EXCLUSIVE before its rows are counted: writes to it wait, reads go on.
 */
export async function createPartition(
  client: pg.ClientBase,
  parent: PartitionedTable,
  period: Date,
  options: { lockTimeoutMs?: number } = {},
): Promise<CreatePartitionResult> {
  const spec = tableSpec(parent);
  const range = periodRange(period, spec.granularity);
  const name = periodPartitionName(spec.table, range.start, spec.granularity);
  const sqlName = qualifiedName(parent, name);
  const parentSql = qualifiedName(parent);
  const inRange = rangeCheckSql(quoteIdent(spec.column), range);
  return inClientTransaction(
    client,
    async () => {
      await client.query(`LOCK TABLE ONLY ${parentSql} IN SHARE UPDATE EXCLUSIVE MODE`);
      const partitions = await listPartitions(client, parent);
      if (overlappingPartition(partitions, range)) return { name, created: false, movedFromDefault: 0 };
      const { rows: existing } = await client.query<{ oid: string | null }>("SELECT to_regclass($1)::text AS oid", [sqlName]);
      if (existing[0]?.oid) throw new PartitionNameTakenError(name, parent);

      const check = `CONSTRAINT ${quoteIdent(boundCheckName(name))} CHECK (${inRange})`;
      const defaultPartition = defaultPartitionOf(partitions);
      let waiting = 0;
      if (defaultPartition) {
        // Returns how many rows of the period the default holds, counted once writes to it wait.
        const [, counted] = (await client.query(
          `LOCK TABLE ${defaultPartition.sqlName} IN EXCLUSIVE MODE; SELECT count(*)::int AS n FROM ${defaultPartition.sqlName} WHERE ${inRange}`,
        )) as unknown as pg.QueryResult<{ n: number }>[];
        waiting = counted?.rows[0]?.n ?? 0;
      }

      if (!defaultPartition || waiting === 0) {
        await client.query(`CREATE TABLE ${sqlName} PARTITION OF ${parentSql} (${check}) FOR VALUES ${rangeBoundSql(range)}`);
        return { name, created: true, movedFromDefault: 0 };
      }
      const movedFromDefault = await movePeriodOutOfDefault(client, { parent, defaultPartition, name, range, check });
      return { name, created: true, movedFromDefault };
    },
    { lockTimeoutMs: options.lockTimeoutMs },
  );
}

/** Adds the bound CHECK constraint to a partition made elsewhere (one validating scan), so a later ATTACH skips its scan. */
export async function ensureBoundCheck(client: pg.ClientBase, parent: PartitionedTable, partition: PartitionInfo): Promise<void> {
  if (!partition.from || !partition.to) return;
  const { rows } = await client.query<{ found: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::text::regclass AND conname = $2 AND convalidated) AS found",
    [partition.sqlName, boundCheckName(partition.name)],
  );
  if (rows[0]?.found) return;
  const inRange = rangeCheckSql(quoteIdent(tableSpec(parent).column), { start: partition.from, end: partition.to });
  await client.query(`ALTER TABLE ${partition.sqlName} ADD CONSTRAINT ${quoteIdent(boundCheckName(partition.name))} CHECK (${inRange})`);
}
