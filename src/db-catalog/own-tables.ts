import type pg from "pg";
import { UnknownTableError } from "./unknown-table-error.js";

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
