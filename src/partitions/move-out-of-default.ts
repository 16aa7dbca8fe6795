import type pg from "pg";
import { quoteIdent } from "../lib/db.js";
import { DbjobsError } from "../lib/errors.js";
import { type PartitionedTable, type PartitionInfo, qualifiedName, tableSpec } from "./catalog.js";
import { type PeriodRange, rangeBoundSql, rangeCheckSql } from "./period-bounds.js";

/**
 * Gives a month (or day, for daily tables) whose rows sit in the default
 * partition a partition of its own, inside the caller's transaction (see createMonthPartition, which has
 * already locked the parent SHARE UPDATE EXCLUSIVE and the default EXCLUSIVE,
 * and counted the month's rows).
 *
 * CREATE TABLE … PARTITION OF would fail here ("updated partition constraint
 * for default partition would be violated"), so, the way pg_partman does it
 * but without detaching anything (detaching the default and attaching it
 * back would rescan all of it and lock the parent ACCESS EXCLUSIVE):
 *
 *   1. CREATE TABLE the month's table LIKE the parent, with its bound CHECK;
 *   2. copy the month's rows from the default into it, delete them there
 *      (the two counts must match, else everything rolls back);
 *   3. build the parent's indexes on it, sorted, in bulk;
 *   4. ATTACH it, last.
 *
 * Locks, and for how long (each until the caller's COMMIT):
 *   - the parent: SHARE UPDATE EXCLUSIVE for the whole transaction; it only
 *     queues other DDL, VACUUM and ANALYZE of the parent. Reads and writes go on.
 *   - the default: EXCLUSIVE from before step 2: writes to the default wait
 *     (rows of months without a partition, and UPDATE/DELETE that cannot
 *     prune it), reads do not. This is what keeps a row of the month from
 *     arriving after the copy. It lasts steps 2 to 4, in proportion to the
 *     month's rows: 0.9 to 1.5 s for a month of 100,000 rows in the bench.
 *   - the default: ACCESS EXCLUSIVE (and SHARE ROW EXCLUSIVE on the tables the
 *     foreign keys reference) only from the ATTACH on, and the ATTACH is the
 *     last statement. Reads of the default wait for that long: ATTACH scans
 *     what is left in the default to prove no row belongs to the new month,
 *     checks the foreign keys of the month's rows, and links the indexes
 *     built in step 3 instead of building them under this lock. In the bench
 *     a lookup through the parent waited at most 23 to 75 ms during a
 *     100,000-row month (1.2 to 1.5 s under pg_partman, which inserts into
 *     the attached partition while holding that lock). Waiting for the lock
 *     is capped by the transaction's lock_timeout.
 *
 * An UPDATE through the parent that was already waiting for the default while
 * the month moved may miss the moved rows (it keeps the partitions it was
 * planned with), as with any row that moves between partitions; rows in the
 * default belong to months without a partition, which are rarely updated.
 *
 * The copy goes into a table without indexes or triggers, and the indexes
 * are built afterwards by sorting: inserting the rows into an attached
 * partition, as pg_partman does, maintains every index row by row and runs
 * the parent's row triggers again for rows that already passed them.
 */
export async function movePeriodOutOfDefault(
  client: pg.ClientBase,
  target: { parent: PartitionedTable; defaultPartition: PartitionInfo; name: string; range: PeriodRange; check: string },
): Promise<number> {
  const name = qualifiedName(target.parent, target.name);
  const parent = qualifiedName(target.parent);
  const defaultPartition = target.defaultPartition.sqlName;
  const inMonth = rangeCheckSql(quoteIdent(tableSpec(target.parent).column), target.range);
  const indexes = await indexStatements(client, parent, name);
  // One round trip for the whole move: a month of a few hundred rows is mostly fixed costs. The DELETE
  // removes exactly the rows the INSERT copied, since nothing else writes to the default while it is
  // locked EXCLUSIVE; two plain statements cost half of one DELETE … RETURNING → INSERT, which has to
  // materialize every returned row.
  //
  // The audit log's append-only trigger lets this one DELETE through (the
  // rows are copied in the same transaction): see its migration.
  const statements = [
    `CREATE TABLE ${name} (LIKE ${parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS, ${target.check})`,
    `INSERT INTO ${name} SELECT * FROM ${defaultPartition} WHERE ${inMonth}`,
    "SET LOCAL dbjobs.partition_move = 'on'",
    `DELETE FROM ${defaultPartition} WHERE ${inMonth}`,
    "SET LOCAL dbjobs.partition_move = 'off'",
    ...indexes,
    `ALTER TABLE ${parent} ATTACH PARTITION ${name} FOR VALUES ${rangeBoundSql(target.range)}`,
  ];
  const results = (await client.query(statements.join(";\n"))) as unknown as pg.QueryResult[];
  const copied = results[1]?.rowCount ?? 0;
  const deleted = results[3]?.rowCount ?? 0;
  // Still inside the caller's transaction, which this throw rolls back, ATTACH included.
  if (copied !== deleted) {
    throw new DbjobsError(
      "DBJOBS_PARTITION_MOVE_MISMATCH",
      `Copied ${copied} rows but deleted ${deleted} from ${target.defaultPartition.name}; rolled back. Rerun partition-maintenance.`,
    );
  }
  return copied;
}

// Takes $1 the partitioned table's SQL name. Returns each of its indexes: for one behind a
// constraint (primary key, unique, exclusion), the constraint's definition;
// otherwise whether it is unique and its definition from USING on (method,
// columns, INCLUDE, WHERE), which does not name the table.
const parentIndexesSql = `
SELECT c.oid IS NOT NULL AS "isConstraint",
       i.indisunique AS "isUnique",
       CASE WHEN c.oid IS NOT NULL THEN pg_get_constraintdef(c.oid)
            ELSE substring(pg_get_indexdef(i.indexrelid) FROM ' USING .*$') END AS definition
  FROM pg_index i
  LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x')
 WHERE i.indrelid = $1::text::regclass
 ORDER BY i.indexrelid`;

/**
 * DDL that builds the parent's indexes on `table`, named as PostgreSQL names
 * them for a partition. ATTACH then adopts each as the partition of the
 * parent's index it matches; one that did not match would simply be built by
 * ATTACH, so a definition this misreads costs time, never correctness.
 */
async function indexStatements(client: pg.ClientBase, parentSql: string, tableSql: string): Promise<string[]> {
  const { rows } = await client.query<{ isConstraint: boolean; isUnique: boolean; definition: string | null }>(parentIndexesSql, [parentSql]);
  return rows.flatMap((index) => {
    if (!index.definition) return [];
    if (index.isConstraint) return [`ALTER TABLE ${tableSql} ADD ${index.definition}`];
    return [`CREATE ${index.isUnique ? "UNIQUE " : ""}INDEX ON ${tableSql}${index.definition}`];
  });
}
