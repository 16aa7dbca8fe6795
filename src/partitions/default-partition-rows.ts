import type pg from "pg";
import { quoteIdent } from "../lib/db.js";
import { defaultPartitionOf, listPartitions, type PartitionedTable } from "./catalog.js";

/** One UTC month's rows sitting in the default partition. */
export interface DefaultMonthRows {
  /** "YYYY-MM" */
  month: string;
  rows: number;
}

/** Rows waiting in the default partition, per UTC month. */
export async function defaultPartitionRows(client: pg.ClientBase, parent: PartitionedTable): Promise<DefaultMonthRows[]> {
  const defaultPartition = defaultPartitionOf(await listPartitions(client, parent));
  if (!defaultPartition) return [];
  // Returns one row per UTC month present in the default partition, oldest first. Formats each month
  // once, after grouping: to_char on every row costs more than the count.
  const { rows } = await client.query<DefaultMonthRows>(
    `SELECT to_char(month AT TIME ZONE 'UTC', 'YYYY-MM') AS month, rows
       FROM (SELECT date_trunc('month', "createdAt", 'UTC') AS month, count(*)::int AS rows
               FROM ${quoteIdent(defaultPartition.name)} GROUP BY 1) AS months
      ORDER BY 1`,
  );
  return rows;
}
