import type { OwnTable, Queryable } from "../../db-catalog/own-tables.js";

/**
 * Indexes left invalid by a failed REINDEX/CREATE INDEX CONCURRENTLY.
 * PostgreSQL names them <index>_ccnew[N] while building and <index>_ccold[N]
 * while swapping; they slow every write to their table and answer no query,
 * so db-maintenance drops them.
 */
export interface InvalidLeftover {
  name: string;
  qualified: string;
  table: string;
  /** From pg_class.relpages (as of the last VACUUM/ANALYZE/build). */
  bytes: number;
}

// Takes $1 the oids of the tables in scope. Returns their
// invalid _ccnew/_ccold indexes. Sizes come from relpages: pg_relation_size
// would wait for a locked table.
const invalidLeftoversSql = `
SELECT ci.relname AS name,
       format('%I.%I', n.nspname, ci.relname) AS qualified,
       ct.relname AS "table",
       (ci.relpages::float8 * current_setting('block_size')::float8) AS bytes
  FROM pg_index i
  JOIN pg_class ci ON ci.oid = i.indexrelid
  JOIN pg_class ct ON ct.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = ci.relnamespace
 WHERE ct.oid = ANY($1::oid[])
   AND NOT i.indisvalid
   AND ci.relname ~ '_cc(new|old)[0-9]*$'
 ORDER BY ci.relname`;

export async function listInvalidLeftovers(client: Queryable, scope: readonly OwnTable[]): Promise<InvalidLeftover[]> {
  const { rows } = await client.query<InvalidLeftover>(invalidLeftoversSql, [scope.map((table) => table.oid)]);
  return rows;
}

// Takes $1 a catalog-quoted table name. Returns the invalid _ccnew/_ccold
// indexes on it: what a REINDEX CONCURRENTLY that failed part-way leaves behind.
const leftoversOnTableSql = `
SELECT format('%I.%I', n.nspname, ci.relname) AS qualified
  FROM pg_index i
  JOIN pg_class ci ON ci.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = ci.relnamespace
 WHERE i.indrelid = to_regclass($1)
   AND NOT i.indisvalid
   AND ci.relname ~ '_cc(new|old)[0-9]*$'`;

export async function leftoversOnTable(client: Queryable, qualifiedTable: string): Promise<string[]> {
  const { rows } = await client.query<{ qualified: string }>(leftoversOnTableSql, [qualifiedTable]);
  return rows.map((row) => row.qualified);
}
