import type pg from "pg";
import { applicationSchema, internalSchemas, internalTableNames, internalTablePrefix } from "./internal-tables.js";
import { UnknownTableError } from "./unknown-table-error.js";

/**
 * What db-maintenance may touch: the application's own tables in schema
 * `public` (ordinary and partitioned, partitions included) and, only when
 * named, the internal tables of internal-tables.ts; never system catalogs,
 * other schemas, temporary tables or tables an extension owns. Every
 * identifier the job puts into SQL comes from here, already quoted by
 * PostgreSQL's own `format('%I')`.
 */
export type Queryable = Pick<pg.ClientBase, "query">;

export interface OwnTable {
  oid: number;
  /** How a payload names it: bare in schema public, else schema-qualified ("bullmq.jobs"). */
  name: string;
  /** `format('%I.%I', schema, name)`: safe to paste into SQL. */
  qualified: string;
  /** `r` ordinary table, `p` partitioned parent. */
  kind: "r" | "p";
  /** Set for a partition: the partitioned table at the top of its tree. */
  rootParent: string | null;
  /** An internal table (or a partition of one): in a run's scope only when named. */
  internal: boolean;
}

// Takes $1 the application schema, $2 the internal schemas, $3 the internal
// table names and $4 the internal name prefix. Returns the ordinary and
// partitioned tables of those schemas with their payload names, quoted names
// and, for partitions, the root of their partition tree; the application
// schema's first, by name.
const ownTablesSql = `
WITH tables AS (
  SELECT c.oid, c.relname, c.relkind, c.relispartition, n.nspname,
         CASE WHEN n.nspname = $1 THEN c.relname::text ELSE n.nspname || '.' || c.relname END AS name,
         (n.nspname = ANY($2::text[]) OR (n.nspname = $1 AND (c.relname = ANY($3::text[]) OR starts_with(c.relname, $4)))) AS internal
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE (n.nspname = $1 OR n.nspname = ANY($2::text[]))
     AND c.relkind IN ('r', 'p')
     AND c.relpersistence <> 't'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
)
SELECT t.oid::int AS oid,
       t.name,
       format('%I.%I', t.nspname, t.relname) AS qualified,
       t.relkind::text AS kind,
       root.name AS "rootParent",
       t.internal OR coalesce(root.internal, false) AS internal
  FROM tables t
  LEFT JOIN tables root ON t.relispartition AND root.oid = pg_partition_root(t.oid)
 ORDER BY t.nspname <> $1, t.nspname, t.relname`;

export async function listOwnTables(client: Queryable): Promise<OwnTable[]> {
  const { rows } = await client.query<OwnTable>(ownTablesSql, [applicationSchema, internalSchemas, internalTableNames, internalTablePrefix]);
  return rows;
}

/**
 * The tables a run works on. Without names: the application's tables, no
 * internal one. With names: those tables (internal ones included) plus, for a
 * partitioned parent, every partition under it. A name that is not one of
 * ours (a system catalog, another schema's table, a typo, an injection
 * attempt) throws UnknownTableError naming it and the tables it could have
 * named; nothing is matched loosely.
 */
export async function resolveScope(client: Queryable, names: readonly string[] | undefined): Promise<OwnTable[]> {
  const tables = await listOwnTables(client);
  if (!names) return tables.filter((table) => !table.internal);
  const byName = new Map(tables.map((table) => [table.name, table]));
  const unknown = [...new Set(names)].filter((name) => !byName.has(name));
  if (unknown.length > 0) {
    throw new UnknownTableError(unknown, {
      application: tables.filter((table) => !table.internal).map((table) => table.name),
      internal: tables.filter((table) => table.internal).map((table) => table.name),
    });
  }
  const wanted = new Set(names);
  return tables.filter((table) => wanted.has(table.name) || (table.rootParent !== null && wanted.has(table.rootParent)));
}
