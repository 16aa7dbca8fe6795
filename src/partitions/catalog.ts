import type pg from "pg";
import type { MonthRange } from "./month-bounds.js";

/** Partitioned tables this project manages; the only names that ever reach DDL from a payload. */
export const partitionedTables = ["transactions", "transactions_archive"] as const;
export type PartitionedTable = (typeof partitionedTables)[number];

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
