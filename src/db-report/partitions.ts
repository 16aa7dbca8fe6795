import type pg from "pg";
import { listPartitions, type PartitionedTable, qualifiedName } from "../partitions/catalog.js";
import { type DefaultMonthRows, defaultPartitionRows } from "../partitions/default-partition-rows.js";
import { addUtcMonths, monthKey, utcMonthStart } from "../partitions/month-bounds.js";
import { formatBytes } from "./format-size.js";
import { defineSection, textTable } from "./report-section.js";

/**
 * The partitions of `transactions` and `transactions_archive` (seed 000,
 * "Table Partitioning"), the rows waiting in their default partitions, and
 * the first month that has no partition yet: the numbers that tell an
 * operator whether partition-maintenance is keeping ahead.
 */

/** Partitions up to this size are counted exactly; larger ones show the planner's estimate (counting would scan them). */
export const exactCountMaxBytes = 100 * 1024 * 1024;

export interface PartitionRow {
  table: PartitionedTable;
  partition: string;
  /** "YYYY-MM-DD" (UTC) or null for the default partition. */
  from: string | null;
  to: string | null;
  rows: number;
  /** False when `rows` is the planner's estimate (reltuples) of a partition over 100 MB. */
  rowsExact: boolean;
  totalBytes: number;
}

// Takes $1 the partitioned table's SQL name. Returns its partitions' sizes and the planner's row estimates (-1: never analyzed).
const sizesSql = `
SELECT c.relname AS partition, pg_total_relation_size(c.oid)::float8 AS "totalBytes", c.reltuples::float8 AS estimate
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = $1::text::regclass`;

export async function partitionRows(client: pg.ClientBase, table: PartitionedTable): Promise<PartitionRow[]> {
  const partitions = await listPartitions(client, table);
  const { rows: sizes } = await client.query<{ partition: string; totalBytes: number; estimate: number }>(sizesSql, [qualifiedName(table)]);
  const result: PartitionRow[] = [];
  for (const partition of partitions) {
    const size = sizes.find((candidate) => candidate.partition === partition.name);
    const totalBytes = size?.totalBytes ?? 0;
    let rows = Math.max(0, Math.round(size?.estimate ?? 0));
    const rowsExact = totalBytes <= exactCountMaxBytes || (size?.estimate ?? -1) < 0;
    if (rowsExact) {
      // The partition's name comes from the catalog.
      const { rows: counted } = await client.query<{ n: number }>(`SELECT count(*)::float8 AS n FROM ${partition.sqlName}`);
      rows = counted[0]?.n ?? 0;
    }
    result.push({
      table,
      partition: partition.name,
      from: partition.from ? partition.from.toISOString().slice(0, 10) : null,
      to: partition.to ? partition.to.toISOString().slice(0, 10) : null,
      rows,
      rowsExact,
      totalBytes,
    });
  }
  return result;
}

/** The first UTC month, from the current one on, that no partition of `table` covers. */
export async function nextMonthWithoutPartition(client: pg.ClientBase, table: PartitionedTable, now = new Date()): Promise<string> {
  const partitions = (await listPartitions(client, table)).filter((partition) => !partition.isDefault);
  let month = utcMonthStart(now);
  for (let guard = 0; guard < 1200; guard++) {
    const start = month;
    if (!partitions.some((partition) => partition.from && partition.to && partition.from <= start && partition.to > start)) break;
    month = addUtcMonths(month, 1);
  }
  return monthKey(month);
}

export interface PartitionsReport {
  partitions: PartitionRow[];
  /** "YYYY-MM": the first month from now on whose rows would land in the default partition of transactions. */
  nextMonthWithoutPartition: string;
  /** Whole months from the current one that already have a partition. */
  monthsCovered: number;
}

export const partitionsSection = defineSection<PartitionsReport>({
  key: "partitions",
  title: "Partitions of transactions and transactions_archive (rows exact up to 100 MB, estimated above)",
  async collect({ pool }) {
    const client = await pool.connect();
    try {
      const partitions = [...(await partitionRows(client, "transactions")), ...(await partitionRows(client, "transactions_archive"))];
      const next = await nextMonthWithoutPartition(client, "transactions");
      const current = utcMonthStart(new Date());
      const [year, month] = next.split("-").map(Number);
      const monthsCovered = ((year as number) - current.getUTCFullYear()) * 12 + ((month as number) - 1 - current.getUTCMonth());
      return { partitions, nextMonthWithoutPartition: next, monthsCovered };
    } finally {
      client.release();
    }
  },
  render(report) {
    const table = textTable(
      report.partitions.map((row) => ({
        table: row.table,
        partition: row.partition,
        range: row.from ? `${row.from} .. ${row.to}` : "DEFAULT",
        rows: row.rowsExact ? String(row.rows) : `~${row.rows}`,
        size: formatBytes(row.totalBytes),
      })),
    );
    const warning = report.monthsCovered < 1 ? "  WARNING: the current month has no partition; run partition-maintenance.\n" : "";
    return `${table}\n\n${warning}  next month without a partition (transactions): ${report.nextMonthWithoutPartition} (${report.monthsCovered} months covered from the current one)`;
  },
});

export interface DefaultPartitionReport {
  table: PartitionedTable;
  rows: number;
  byMonth: DefaultMonthRows[];
}

export const defaultPartitionRowsSection = defineSection<DefaultPartitionReport[]>({
  key: "defaultPartitionRows",
  title: "Rows in default partitions (they belong to months without a partition)",
  async collect({ pool }) {
    const client = await pool.connect();
    try {
      const report: DefaultPartitionReport[] = [];
      for (const table of ["transactions", "transactions_archive"] as const) {
        const byMonth = await defaultPartitionRows(client, table);
        report.push({ table, rows: byMonth.reduce((sum, month) => sum + month.rows, 0), byMonth });
      }
      return report;
    } finally {
      client.release();
    }
  },
  render(report) {
    const lines = report.map((entry) =>
      entry.rows === 0
        ? `  ${entry.table}: 0 rows`
        : `  ${entry.table}: ${entry.rows} rows — WARNING, months ${entry.byMonth.map((month) => `${month.month} (${month.rows})`).join(", ")}`,
    );
    return lines.join("\n");
  },
});
