import { freshBtreeBytes, readIndexFacts } from "./fresh-btree-size.js";
import { isLockBusy } from "./lock-busy.js";
import type { OwnTable, Queryable } from "./own-tables.js";

/**
 * Estimated bloat of the btree indexes on our tables, as
 *
 *   ratio = actual size / size a fresh build would have
 *
 * so 1.0 is a freshly built index and 2.0 one twice as large as it needs to be.
 *
 * Two methods:
 * - `pgstatindex` (extension pgstattuple, when installed and executable): reads
 *   the index and measures leaf density exactly. Fresh size is
 *   leaf_pages × avg_leaf_density / fillfactor + internal pages + the meta page.
 * - `statistics`: estimated from planner statistics (fresh-btree-size.ts:
 *   ioguix's pgsql-bloat-estimation btree estimate, scaled for btree
 *   deduplication by how many rows share a key). Needs no extension and reads
 *   no index pages, but only knows an index whose table has been analyzed.
 *
 * Only leaf btree indexes (relkind 'i') are estimated: a partitioned index has
 * no storage of its own; its partitions' indexes are estimated one by one.
 */
export type BloatMethod = "pgstatindex" | "statistics";

export interface IndexBloat {
  index: string;
  qualified: string;
  table: string;
  qualifiedTable: string;
  bytes: number;
  /** Size a fresh build would have; null when the method cannot tell (no statistics yet). */
  estimatedBytes: number | null;
  ratio: number | null;
}

/** Indexes smaller than this are not estimated: a few pages of slack in a tiny index is noise, not bloat. */
export const minReindexBytes = 1024 * 1024;

interface IndexRow {
  oid: number;
  index: string;
  qualified: string;
  table: string;
  qualifiedTable: string;
  bytes: number;
  fillfactor: number;
}

// Takes $1 the oids of the tables in scope. Returns their valid, ready, leaf
// btree indexes with fillfactor. Sizes are measured one index at a time
// (pg_relation_size takes a lock), so one locked table cannot stall the list.
const btreeIndexesSql = `
SELECT ci.oid::int AS oid,
       ci.relname AS "index",
       format('%I.%I', n.nspname, ci.relname) AS qualified,
       ct.relname AS "table",
       format('%I.%I', tn.nspname, ct.relname) AS "qualifiedTable",
       coalesce((SELECT o.option_value FROM pg_options_to_table(ci.reloptions) o WHERE o.option_name = 'fillfactor')::int, 90) AS fillfactor
  FROM pg_index i
  JOIN pg_class ci ON ci.oid = i.indexrelid
  JOIN pg_class ct ON ct.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = ci.relnamespace
  JOIN pg_namespace tn ON tn.oid = ct.relnamespace
  JOIN pg_am am ON am.oid = ci.relam
 WHERE ct.oid = ANY($1::oid[])
   AND ci.relkind = 'i'
   AND am.amname = 'btree'
   AND i.indisvalid AND i.indisready AND i.indislive
 ORDER BY ci.relname`;

// Takes $1 an index oid. Returns its size in bytes (waits at most lock_timeout for its lock).
const indexSizeSql = "SELECT pg_relation_size($1::oid::regclass)::float8 AS bytes";

// Takes nothing. Returns the schema of pgstattuple when it is installed and
// this role may execute pgstatindex(regclass), else no row.
const pgstattupleSql = `
SELECT format('%I', n.nspname) AS schema
  FROM pg_extension e
  JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pgstattuple'
   AND coalesce(has_function_privilege(to_regprocedure(format('%I.pgstatindex(regclass)', n.nspname)), 'EXECUTE'), false)`;

export async function detectBloatMethod(client: Queryable): Promise<{ method: BloatMethod; schema?: string }> {
  const { rows } = await client.query<{ schema: string }>(pgstattupleSql);
  const schema = rows[0]?.schema;
  return schema ? { method: "pgstatindex", schema } : { method: "statistics" };
}

// Takes $1 an index oid. Returns pgstatindex's page counts and leaf density
// (avg_leaf_density is NaN for an index without leaf pages). The function
// name's schema comes from pg_extension, quoted by format('%I').
const pgstatindexSql = (schema: string) => `
SELECT index_size::float8 AS "indexSize", internal_pages::float8 AS "internalPages", leaf_pages::float8 AS "leafPages",
       CASE WHEN avg_leaf_density = 'NaN' THEN NULL ELSE avg_leaf_density END::float8 AS "leafDensity",
       current_setting('block_size')::float8 AS "blockSize"
  FROM ${schema}.pgstatindex($1::oid::regclass)`;

async function pgstatindexEstimate(client: Queryable, schema: string, index: IndexRow): Promise<IndexBloat> {
  const { rows } = await client.query<{ indexSize: number; internalPages: number; leafPages: number; leafDensity: number | null; blockSize: number }>(
    pgstatindexSql(schema),
    [index.oid],
  );
  const row = rows[0];
  const base = { index: index.index, qualified: index.qualified, table: index.table, qualifiedTable: index.qualifiedTable, bytes: index.bytes };
  if (!row) return { ...base, estimatedBytes: null, ratio: null };
  const freshLeafPages = row.leafPages === 0 ? 0 : Math.max(1, Math.ceil((row.leafPages * (row.leafDensity ?? 0)) / index.fillfactor));
  const estimatedBytes = (freshLeafPages + row.internalPages + 1) * row.blockSize;
  return { ...base, estimatedBytes, ratio: round2(index.bytes / estimatedBytes) };
}

async function statisticsEstimates(client: Queryable, indexes: IndexRow[]): Promise<IndexBloat[]> {
  const facts = await readIndexFacts(
    client,
    indexes.map((index) => index.oid),
  );
  const estimates = new Map(facts.map((index) => [index.oid, freshBtreeBytes(index)]));
  return indexes.map((index) => {
    const estimatedBytes = estimates.get(index.oid) ?? null;
    return {
      index: index.index,
      qualified: index.qualified,
      table: index.table,
      qualifiedTable: index.qualifiedTable,
      bytes: index.bytes,
      estimatedBytes,
      ratio: estimatedBytes ? round2(index.bytes / estimatedBytes) : null,
    };
  });
}

export interface BloatEstimates {
  method: BloatMethod;
  /** Largest first. */
  indexes: IndexBloat[];
  /** Indexes that could not be measured because their lock stayed busy past lock_timeout. */
  unavailable: { index: string; reason: string }[];
}

/**
 * Estimates every leaf btree index of at least `minBytes` on the tables in
 * scope. An index pgstatindex cannot read for another reason than a busy lock
 * falls back to the statistics estimate.
 */
export async function estimateIndexBloat(
  client: Queryable,
  scope: readonly OwnTable[],
  options: { method?: BloatMethod; minBytes?: number } = {},
): Promise<BloatEstimates> {
  const minBytes = options.minBytes ?? minReindexBytes;
  const { rows: listed } = await client.query<Omit<IndexRow, "bytes">>(btreeIndexesSql, [scope.map((table) => table.oid)]);
  const unavailable: BloatEstimates["unavailable"] = [];
  const lockBusy = (index: string) => unavailable.push({ index, reason: "lock busy past lock_timeout while measuring; will be retried next run" });
  const indexes: IndexRow[] = [];
  for (const index of listed) {
    try {
      const { rows } = await client.query<{ bytes: number }>(indexSizeSql, [index.oid]);
      const bytes = rows[0]?.bytes ?? 0;
      if (bytes >= minBytes) indexes.push({ ...index, bytes });
    } catch (err) {
      if (!isLockBusy(err)) throw err;
      lockBusy(index.index);
    }
  }
  indexes.sort((a, b) => b.bytes - a.bytes || a.index.localeCompare(b.index));

  const detected = await detectBloatMethod(client);
  const method = options.method ?? detected.method;
  if (method === "statistics") return { method, indexes: await statisticsEstimates(client, indexes), unavailable };
  if (!detected.schema) throw new Error("pgstattuple is not installed in this database; use the statistics method");

  const estimates: IndexBloat[] = [];
  const fallback: IndexRow[] = [];
  for (const index of indexes) {
    try {
      estimates.push(await pgstatindexEstimate(client, detected.schema, index));
    } catch (err) {
      if (isLockBusy(err)) lockBusy(index.index);
      else fallback.push(index);
    }
  }
  if (fallback.length > 0) estimates.push(...(await statisticsEstimates(client, fallback)));
  return { method, indexes: estimates.sort((a, b) => b.bytes - a.bytes), unavailable };
}

/** Current on-disk size of an index, in bytes; null when its lock stays busy. */
export async function indexBytes(client: Queryable, qualified: string): Promise<number | null> {
  try {
    // Takes $1 a catalog-quoted index name. Returns its size.
    const { rows } = await client.query<{ bytes: number }>("SELECT pg_relation_size(to_regclass($1))::float8 AS bytes", [qualified]);
    return rows[0]?.bytes ?? null;
  } catch (err) {
    if (isLockBusy(err)) return null;
    throw err;
  }
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
