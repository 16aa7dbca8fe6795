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
  // Returns one row per UTC month present in the default partition, oldest first.
  const { rows } = await client.query<DefaultMonthRows>(
    `SELECT to_char(date_trunc('month', "createdAt", 'UTC') AT TIME ZONE 'UTC', 'YYYY-MM') AS month, count(*)::int AS rows
       FROM ${quoteIdent(defaultPartition.name)} GROUP BY 1 ORDER BY 1`,
  );
  return rows;
}
