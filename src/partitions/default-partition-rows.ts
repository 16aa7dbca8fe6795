import type pg from "pg";
import { quoteIdent } from "../lib/db.js";
import { defaultPartitionOf, listPartitions, type PartitionedTable, tableSpec } from "./catalog.js";
import { periodSql } from "./period-bounds.js";

/** One UTC period's rows sitting in the default partition. */
export interface DefaultMonthRows {
  /** The period: "YYYY-MM" for monthly tables, "YYYY-MM-DD" for daily ones. */
  month: string;
  rows: number;
}

/** Rows waiting in the default partition, per UTC month (or day, for daily tables). */
export async function defaultPartitionRows(client: pg.ClientBase, parent: PartitionedTable): Promise<DefaultMonthRows[]> {
  const defaultPartition = defaultPartitionOf(await listPartitions(client, parent));
  if (!defaultPartition) return [];
  const spec = tableSpec(parent);
  const { trunc, format } = periodSql(spec.granularity);
  // Returns one row per UTC period present in the default partition, oldest first. Formats each period
  // once, after grouping: to_char on every row costs more than the count.
  const { rows } = await client.query<DefaultMonthRows>(
    `SELECT to_char(period AT TIME ZONE 'UTC', ${format}) AS month, rows
       FROM (SELECT date_trunc(${trunc}, ${quoteIdent(spec.column)}, 'UTC') AS period, count(*)::int AS rows
               FROM ${defaultPartition.sqlName} GROUP BY 1) AS periods
      ORDER BY 1`,
  );
  return rows;
}
