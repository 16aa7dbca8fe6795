import type pg from "pg";
import { inClientTransaction } from "./client-transaction.js";
import { quoteIdent } from "./db.js";
import { DbjobsError } from "./errors.js";

/**
 * Monthly RANGE partitions on "createdAt", in UTC, named <parent>_YYYY_MM.
 *
 * Every monthly partition this file creates also carries a CHECK constraint
 * equal to its partition bound. PostgreSQL skips the validation scan of
 * ATTACH PARTITION when such a constraint proves the bound, so a month can
 * later be detached from `transactions` and attached to
 * `transactions_archive` in constant time (the archiving fast path).
 */

/** Partitioned tables this project manages; the only names that ever reach DDL from a payload. */
export const partitionedTables = ["transactions", "transactions_archive"] as const;
export type PartitionedTable = (typeof partitionedTables)[number];

export interface MonthRange {
  /** First instant of the month, UTC. */
  start: Date;
  /** First instant of the next month, UTC (exclusive). */
  end: Date;
}

export function utcMonthStart(date: Date): Date {
  return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1));
}

export function addUtcMonths(monthStart: Date, months: number): Date {
  return new Date(Date.UTC(monthStart.getUTCFullYear(), monthStart.getUTCMonth() + months, 1));
}

export function monthRange(monthStart: Date): MonthRange {
  const start = utcMonthStart(monthStart);
  return { start, end: addUtcMonths(start, 1) };
}

/** "2026-05" for any instant in May 2026 (UTC). */
export function monthKey(date: Date): string {
  return `${date.getUTCFullYear()}-${String(date.getUTCMonth() + 1).padStart(2, "0")}`;
}

/** The first instant of a "YYYY-MM" month. */
export function monthFromKey(key: string): Date {
  const [year, month] = key.split("-").map(Number);
  return new Date(Date.UTC(year as number, (month as number) - 1, 1));
}

/** transactions_2026_05 */
export function monthPartitionName(parent: string, monthStart: Date): string {
  return `${parent}_${monthKey(monthStart).replace("-", "_")}`;
}

export function boundCheckName(partition: string): string {
  return `${partition}_bound_check`;
}

/** A timestamp literal for DDL (bounds cannot be bind parameters). toISOString only emits [0-9TZ:.-]. */
function timestampLiteral(date: Date): string {
  return `'${date.toISOString()}'`;
}

export interface PartitionInfo {
  name: string;
  isDefault: boolean;
  /** Inclusive lower bound; null for the default partition. */
  from: Date | null;
  /** Exclusive upper bound; null for the default partition. */
  to: Date | null;
}

// Takes $1 the partitioned table's name. Returns each partition with its
// bounds parsed from the catalog (pg_get_expr prints them with their offset,
// so the cast back to timestamptz is exact), the default partition last.
const listPartitionsSql = `
SELECT c.relname AS name,
       c.relpartbound IS NOT NULL AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS "isDefault",
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS "from",
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS "to"
  FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = $1::text::regclass
 ORDER BY 3 NULLS LAST, 1`;

export async function listPartitions(client: pg.ClientBase, parent: PartitionedTable): Promise<PartitionInfo[]> {
  const { rows } = await client.query<PartitionInfo>(listPartitionsSql, [parent]);
  return rows;
}

export function defaultPartitionOf(partitions: PartitionInfo[]): PartitionInfo | undefined {
  return partitions.find((partition) => partition.isDefault);
}

/** The non-default partition whose range overlaps [start, end), if any. */
export function overlappingPartition(partitions: PartitionInfo[], range: MonthRange): PartitionInfo | undefined {
  return partitions.find(
    (partition) => !partition.isDefault && (partition.from === null || partition.from < range.end) && (partition.to === null || partition.to > range.start),
  );
}

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

      const bound = `FROM (${timestampLiteral(range.start)}) TO (${timestampLiteral(range.end)})`;
      const check = `CONSTRAINT ${quoteIdent(boundCheckName(name))} CHECK ("createdAt" >= ${timestampLiteral(range.start)} AND "createdAt" < ${timestampLiteral(range.end)})`;
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
    `ALTER TABLE ${quoteIdent(partition.name)} ADD CONSTRAINT ${quoteIdent(boundCheckName(partition.name))} CHECK ("createdAt" >= ${timestampLiteral(partition.from)} AND "createdAt" < ${timestampLiteral(partition.to)})`,
  );
}

export interface DefaultMonthRows {
  month: string;
  rows: number;
}

/** Rows waiting in the default partition, per UTC month. */
export async function defaultPartitionRows(client: pg.ClientBase, parent: PartitionedTable): Promise<DefaultMonthRows[]> {
  const defaultPartition = defaultPartitionOf(await listPartitions(client, parent));
  if (!defaultPartition) return [];
  // Returns one row per UTC month present in the default partition, oldest first.
  const { rows } = await client.query<DefaultMonthRows>(
    `SELECT to_char(date_trunc('month', "createdAt", 'UTC') AT TIME ZONE 'UTC', 'YYYY-MM') AS month, count(*)::int AS rows
       FROM ${quoteIdent(defaultPartition.name)} GROUP BY 1 ORDER BY 1`,
  );
  return rows;
}
