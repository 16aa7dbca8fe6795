import type pg from "pg";
import { quoteIdent } from "../lib/db.js";
import type { Granularity, PeriodRange } from "./period-bounds.js";

/**
 * Every partitioned table this project owns: the only names that ever reach
 * partition DDL. Each is RANGE-partitioned on one timestamptz column by UTC
 * month or day, with a default partition; partition-maintenance makes its
 * partitions ahead of time and, for tables with a retention, drops whole
 * partitions once they are older than it.
 */
export interface PartitionedTableSpec {
  schema: "public" | "dbjobs";
  table: string;
  /** The partition key column, unquoted. */
  column: string;
  granularity: Granularity;
  /**
   * `history`: partitions older than HISTORY_RETENTION_DAYS are dropped.
   * `none`: kept (transactions leave through archiving, the archive is kept 7+ years).
   */
  retention: "none" | "history";
}

export const partitionedTableSpecs = {
  transactions: { schema: "public", table: "transactions", column: "createdAt", granularity: "month", retention: "none" },
  transactions_archive: { schema: "public", table: "transactions_archive", column: "createdAt", granularity: "month", retention: "none" },
  "dbjobs.job_history": { schema: "dbjobs", table: "job_history", column: "finished_at", granularity: "day", retention: "history" },
  "dbjobs.audit_log": { schema: "dbjobs", table: "audit_log", column: "at", granularity: "day", retention: "history" },
} as const satisfies Record<string, PartitionedTableSpec>;

export type PartitionedTable = keyof typeof partitionedTableSpecs;
export const partitionedTables = Object.keys(partitionedTableSpecs) as PartitionedTable[];

export function tableSpec(table: PartitionedTable): PartitionedTableSpec {
  return partitionedTableSpecs[table];
}

/**
 * The SQL name of `name` in `table`'s schema (the table itself by default).
 * Tables in public stay unqualified, as the application's own SQL names them.
 */
export function qualifiedName(table: PartitionedTable, name: string = tableSpec(table).table): string {
  const { schema } = tableSpec(table);
  return schema === "public" ? quoteIdent(name) : `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

export interface PartitionInfo {
  /** The partition's table name, unqualified. */
  name: string;
  /** Its SQL name, quoted and schema-qualified as needed (from regclass, so safe to splice into DDL). */
  sqlName: string;
  isDefault: boolean;
  /** Inclusive lower bound; null for the default partition. */
  from: Date | null;
  /** Exclusive upper bound; null for the default partition. */
  to: Date | null;
}

// Takes $1 the partitioned table's SQL name. Returns each partition with its
// bounds parsed from the catalog (pg_get_expr prints them with their offset,
// so the cast back to timestamptz is exact), the default partition last.
const listPartitionsSql = `
SELECT c.relname AS name,
       c.oid::regclass::text AS "sqlName",
       c.relpartbound IS NOT NULL AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS "isDefault",
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS "from",
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS "to"
  FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = $1::text::regclass
 ORDER BY 4 NULLS LAST, 1`;

export async function listPartitions(client: pg.ClientBase, parent: PartitionedTable): Promise<PartitionInfo[]> {
  const { rows } = await client.query<PartitionInfo>(listPartitionsSql, [qualifiedName(parent)]);
  return rows;
}

export function defaultPartitionOf(partitions: PartitionInfo[]): PartitionInfo | undefined {
  return partitions.find((partition) => partition.isDefault);
}

/** The non-default partition whose range overlaps [start, end), if any. */
export function overlappingPartition(partitions: PartitionInfo[], range: PeriodRange): PartitionInfo | undefined {
  return partitions.find(
    (partition) => !partition.isDefault && (partition.from === null || partition.from < range.end) && (partition.to === null || partition.to > range.start),
  );
}
