import type pg from "pg";
import { UnknownTableError } from "./maintenance-errors.js";

/**
 * What db-maintenance may touch: the application's own tables in schema
 * `public` (ordinary and partitioned, partitions included), never system
 * catalogs, other schemas, temporary tables or tables an extension owns.
 * Every identifier the job puts into SQL comes from here, already quoted by
 * PostgreSQL's own `format('%I')`.
 */
export type Queryable = Pick<pg.ClientBase, "query">;

export const maintainedSchema = "public";

export interface OwnTable {
  oid: number;
  name: string;
  /** `format('%I.%I', schema, name)`: safe to paste into SQL. */
  qualified: string;
  /** `r` ordinary table, `p` partitioned parent. */
  kind: "r" | "p";
  /** Set for a partition: the partitioned table at the top of its tree. */
  rootParent: string | null;
}

// Takes $1 the schema. Returns our ordinary and partitioned tables with
// their quoted names, and for partitions the root of their partition tree.
const ownTablesSql = `
SELECT c.oid::int AS oid,
       c.relname AS name,
       format('%I.%I', n.nspname, c.relname) AS qualified,
       c.relkind::text AS kind,
       (SELECT root.relname
          FROM pg_partition_root(c.oid) AS r(oid)
          JOIN pg_class root ON root.oid = r.oid
         WHERE c.relispartition) AS "rootParent"
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1
   AND c.relkind IN ('r', 'p')
   AND c.relpersistence <> 't'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY c.relname`;

export async function listOwnTables(client: Queryable): Promise<OwnTable[]> {
  const { rows } = await client.query<OwnTable>(ownTablesSql, [maintainedSchema]);
  return rows;
}

/**
 * The tables a run works on. Without names: all of ours. With names: those
 * tables plus, for a partitioned parent, every partition under it. A name that
 * is not one of ours (a system catalog, another schema's table, a typo, an
 * injection attempt) throws UnknownTableError naming it; nothing is matched
 * loosely.
 */
export async function resolveScope(client: Queryable, names: readonly string[] | undefined): Promise<OwnTable[]> {
  const tables = await listOwnTables(client);
  if (!names) return tables;
  const byName = new Map(tables.map((table) => [table.name, table]));
  const unknown = [...new Set(names)].filter((name) => !byName.has(name));
  if (unknown.length > 0)
    throw new UnknownTableError(
      unknown,
      tables.map((table) => table.name),
    );
  const wanted = new Set(names);
  return tables.filter((table) => wanted.has(table.name) || (table.rootParent !== null && wanted.has(table.rootParent)));
}

export interface InvalidLeftover {
  name: string;
  qualified: string;
  table: string;
  /** From pg_class.relpages (as of the last VACUUM/ANALYZE/build). */
  bytes: number;
}

// Takes $1 the schema and $2 the oids of the tables in scope. Returns indexes
// left invalid by a failed REINDEX/CREATE INDEX CONCURRENTLY (PostgreSQL names
// them <index>_ccnew[N] while building and <index>_ccold[N] while swapping).
// Sizes come from relpages: pg_relation_size would wait for a locked table.
const invalidLeftoversSql = `
SELECT ci.relname AS name,
       format('%I.%I', n.nspname, ci.relname) AS qualified,
       ct.relname AS "table",
       (ci.relpages::float8 * current_setting('block_size')::float8) AS bytes
  FROM pg_index i
  JOIN pg_class ci ON ci.oid = i.indexrelid
  JOIN pg_class ct ON ct.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = ci.relnamespace
 WHERE n.nspname = $1
   AND ct.oid = ANY($2::oid[])
   AND NOT i.indisvalid
   AND ci.relname ~ '_cc(new|old)[0-9]*$'
 ORDER BY ci.relname`;

export async function listInvalidLeftovers(client: Queryable, scope: readonly OwnTable[]): Promise<InvalidLeftover[]> {
  const { rows } = await client.query<InvalidLeftover>(invalidLeftoversSql, [maintainedSchema, scope.map((table) => table.oid)]);
  return rows;
}
