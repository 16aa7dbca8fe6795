import type { Queryable } from "./own-tables.js";

/**
 * The size a fresh build of a btree index would have, estimated from planner
 * statistics alone: no extension, no index page read, but only for an index
 * whose table has been analyzed.
 *
 * The base is the well-known estimate of ioguix's pgsql-bloat-estimation
 * (btree/btree_bloat.sql): every row is one index tuple of
 * MAXALIGN(header [+ null bitmap]) + MAXALIGN(Σ (1 - null_frac) × avg_width)
 * plus a 4-byte line pointer, packed into pages at the index's fillfactor.
 *
 * That base ignores deduplication (PostgreSQL 13+). A fresh build of a btree
 * that may deduplicate stores each run of equal keys as posting-list tuples:
 * the key once, then a 6-byte heap TID per row, at most about a tenth of a
 * page per tuple. A duplicate-heavy index is then a third of the base or
 * less, and bloat measured against the base is underestimated 3×. So for
 * such an index the leaf pages are counted from posting lists, by how many
 * rows share a key: each most common value's frequency, one group for the
 * NULLs, and the other rows spread evenly over the other n_distinct values;
 * key columns are taken as independent of each other.
 *
 * Against rebuilt indexes (single and two-column, nullable, text, skewed;
 * fresh and 4× bloated) this came within 7%, with two known ways to miss:
 * correlated key columns share fewer keys than independence predicts (the
 * estimate reads low, e.g. 0.72 on a fresh index), and where a few values
 * hold most rows and the rest are nearly unique ANALYZE underestimates
 * n_distinct (it reads high, e.g. 1.43 on a fresh index). pgstatindex, which
 * measures, has neither problem.
 */
export interface IndexFacts {
  oid: number;
  /** The index's row count as of its last VACUUM/ANALYZE; -1 when never measured. */
  reltuples: number;
  fillfactor: number;
  blockSize: number;
  /** Whether a fresh build stores equal keys as posting lists (see indexFactsSql). */
  deduplicates: boolean;
  /** Per index column (key columns first); null where pg_stats has no row (table never analyzed). */
  columns: (ColumnStats | null)[];
}

export interface ColumnStats {
  nullFrac: number;
  avgWidth: number;
  /** pg_stats.n_distinct: a count, or minus a fraction of the rows when negative. */
  nDistinct: number;
  /** pg_stats.most_common_freqs, as fractions of all rows; empty when there are none. */
  commonFreqs: number[];
}

const maxAlign = 8;
const pageHeader = 24;
const btreeSpecial = 16;
const linePointer = 4;
const tupleHeader = 8;
const heapTid = 6;
/** Average padding MAXALIGN adds after a posting list of 6-byte TIDs (0, 2, 4 or 6 bytes). */
const postingPadding = 3;

/** Bytes of a fresh build, or null when statistics are missing. */
export function freshBtreeBytes(index: IndexFacts): number | null {
  if (index.reltuples < 0 || index.columns.length === 0) return null;
  const columns = index.columns.filter((column): column is ColumnStats => column !== null);
  if (columns.length !== index.columns.length) return null;

  const tupleWidth = baseTupleWidth(columns);
  const leafBytes = ((index.blockSize - btreeSpecial - pageHeader) * index.fillfactor) / 100;
  const plainLeafPages = Math.ceil(index.reltuples / Math.floor(leafBytes / (linePointer + tupleWidth)));
  const leafPages = (index.deduplicates && deduplicatedLeafPages(columns, index.reltuples, tupleWidth, index.blockSize, leafBytes)) || plainLeafPages;
  // The meta page, plus leaf pages; inner pages are left out, as in the base estimate.
  return index.blockSize * (1 + leafPages);
}

/** ioguix's tuple width: header and null bitmap, then the data, each padded (the data by its own rounding rule). */
function baseTupleWidth(columns: ColumnStats[]): number {
  const header = columns.some((column) => column.nullFrac > 0) ? tupleHeader + Math.floor((32 + maxAlign - 1) / maxAlign) : tupleHeader;
  const data = columns.reduce((sum, column) => sum + (1 - column.nullFrac) * column.avgWidth, 0);
  const headerPad = header % maxAlign === 0 ? maxAlign : header % maxAlign;
  const dataPad = data === 0 ? 0 : Math.round(data) % maxAlign === 0 ? maxAlign : Math.round(data) % maxAlign;
  return header + maxAlign - headerPad + data + maxAlign - dataPad;
}

/** Rows sharing one key: `count` keys with `rows` rows each. */
interface KeyGroups {
  rows: number;
  count: number;
}

/**
 * Leaf pages of a fresh build that stores equal keys as posting lists; null
 * when no key is expected to repeat (nothing to deduplicate).
 */
export function deduplicatedLeafPages(columns: ColumnStats[], rows: number, tupleWidth: number, blockSize: number, leafBytes: number): number | null {
  if (rows <= 0) return null;
  // A fresh build caps a posting-list tuple, line pointer included, at a tenth of a page.
  const maxTuple = alignDown(alignDown(blockSize / 10) - linePointer);
  const maxTids = Math.floor((maxTuple - tupleWidth) / heapTid);
  if (maxTids < 2) return null;
  let groups = keyGroups(columns[0] as ColumnStats, rows);
  for (const column of columns.slice(1)) groups = compact(combine(groups, keyGroups(column, rows), rows));

  let bytes = 0;
  let tuples = 0;
  let saved = false;
  for (const group of groups) {
    const plainBytes = group.rows * (linePointer + tupleWidth);
    const postingTuples = Math.ceil(group.rows / maxTids);
    const postingBytes = postingTuples * (linePointer + tupleWidth + postingPadding) + group.rows * heapTid;
    // A key with a single row stays a plain tuple; a posting list never costs more than the tuples it replaces.
    if (postingBytes < plainBytes) {
      saved = true;
      bytes += group.count * postingBytes;
      tuples += group.count * postingTuples;
    } else {
      bytes += group.count * plainBytes;
      tuples += group.count * group.rows;
    }
  }
  if (!saved) return null;
  // Posting-list tuples are large (up to a tenth of a page), so a page closes on average half a tuple short of its fill target.
  return Math.ceil(bytes / (leafBytes - bytes / tuples / 2));
}

/** How the rows of one column share its values: the common values, the NULLs, and the rest spread evenly. */
function keyGroups(column: ColumnStats, rows: number): KeyGroups[] {
  const groups: KeyGroups[] = [];
  if (column.nullFrac > 0) groups.push({ rows: column.nullFrac * rows, count: 1 });
  for (const freq of column.commonFreqs) groups.push({ rows: freq * rows, count: 1 });
  const restRows = (1 - column.nullFrac - column.commonFreqs.reduce((sum, freq) => sum + freq, 0)) * rows;
  const nonNullDistinct = column.nDistinct >= 0 ? column.nDistinct : -column.nDistinct * rows;
  const restDistinct = Math.min(restRows, Math.max(1, nonNullDistinct - column.commonFreqs.length));
  if (restRows >= 1) groups.push({ rows: restRows / restDistinct, count: restDistinct });
  return groups.filter((group) => group.rows > 0);
}

/**
 * Key groups of two columns together, taking the columns as independent:
 * a pair of groups expects λ = a.rows × b.rows / rows rows per combined key;
 * of its a.count × b.count possible keys, 1 - e^-λ of them occur (Poisson).
 */
function combine(left: KeyGroups[], right: KeyGroups[], rows: number): KeyGroups[] {
  const groups: KeyGroups[] = [];
  for (const a of left) {
    for (const b of right) {
      const perKey = (a.rows * b.rows) / rows;
      const keys = a.count * b.count;
      const present = keys * -Math.expm1(-perKey);
      if (present > 0) groups.push({ rows: (keys * perKey) / present, count: present });
    }
  }
  return groups;
}

/** Merges groups of nearly the same size (within about 5%), so many key columns with long common-value lists stay cheap. */
function compact(groups: KeyGroups[]): KeyGroups[] {
  if (groups.length <= 256) return groups;
  const buckets = new Map<number, KeyGroups>();
  for (const group of groups) {
    const bucket = Math.round(Math.log(group.rows) * 20);
    const merged = buckets.get(bucket);
    if (!merged) buckets.set(bucket, { ...group });
    else {
      const count = merged.count + group.count;
      merged.rows = (merged.rows * merged.count + group.rows * group.count) / count;
      merged.count = count;
    }
  }
  return [...buckets.values()];
}

function alignDown(bytes: number): number {
  return Math.floor(bytes / maxAlign) * maxAlign;
}

// Takes $1 the index oids. Returns one row per index column: the index's
// reltuples, fillfactor and whether a fresh build deduplicates, and the
// column's pg_stats (null when the table was never analyzed). A column is an
// expression's when indkey is 0; its statistics are then the index's own.
// A fresh build deduplicates (nbtsort.c) when the index is not unique, has
// no INCLUDE columns, deduplicate_items is on, and every key column's
// operator class has an equalimage function (support function 4) under a
// deterministic collation: what _bt_allequalimage checks.
const indexFactsSql = `
SELECT x.indexrelid::int AS oid,
       ci.reltuples::float8 AS reltuples,
       coalesce((SELECT o.option_value FROM pg_options_to_table(ci.reloptions) o WHERE o.option_name = 'fillfactor')::int, 90) AS fillfactor,
       current_setting('block_size')::int AS "blockSize",
       NOT x.indisunique
         AND x.indnkeyatts = x.indnatts
         AND coalesce((SELECT o.option_value FROM pg_options_to_table(ci.reloptions) o WHERE o.option_name = 'deduplicate_items')::boolean, true)
         AND (SELECT bool_and(EXISTS (SELECT 1
                                        FROM pg_opclass opc
                                        JOIN pg_amproc p ON p.amprocfamily = opc.opcfamily AND p.amproclefttype = opc.opcintype
                                                        AND p.amprocrighttype = opc.opcintype AND p.amprocnum = 4
                                       WHERE opc.oid = x.indclass[k.pos])
                              AND coalesce((SELECT c.collisdeterministic FROM pg_collation c WHERE c.oid = x.indcollation[k.pos]), true))
                FROM generate_series(0, x.indnkeyatts - 1) AS k(pos)) AS deduplicates,
       col.pos AS position,
       s.null_frac::float8 AS "nullFrac",
       s.avg_width::float8 AS "avgWidth",
       s.n_distinct::float8 AS "nDistinct",
       s.most_common_freqs::float8[] AS "commonFreqs",
       s.attname IS NOT NULL AS "hasStats"
  FROM pg_index x
  JOIN pg_class ci ON ci.oid = x.indexrelid
  JOIN pg_class ct ON ct.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = ct.relnamespace
  CROSS JOIN LATERAL generate_series(0, x.indnatts - 1) AS col(pos)
  LEFT JOIN pg_attribute a ON (x.indkey[col.pos] <> 0 AND a.attrelid = x.indrelid AND a.attnum = x.indkey[col.pos])
                           OR (x.indkey[col.pos] = 0 AND a.attrelid = x.indexrelid AND a.attnum = col.pos + 1)
  LEFT JOIN pg_stats s ON s.schemaname = n.nspname
                      AND s.tablename = CASE WHEN x.indkey[col.pos] = 0 THEN ci.relname ELSE ct.relname END
                      AND s.attname = a.attname
                      AND NOT s.inherited
 WHERE x.indexrelid = ANY($1::oid[])
 ORDER BY x.indexrelid, col.pos`;

interface FactRow extends Omit<IndexFacts, "columns">, Omit<ColumnStats, "commonFreqs"> {
  position: number;
  commonFreqs: number[] | null;
  hasStats: boolean;
}

export async function readIndexFacts(client: Queryable, oids: readonly number[]): Promise<IndexFacts[]> {
  const { rows } = await client.query<FactRow>(indexFactsSql, [oids]);
  const byIndex = new Map<number, IndexFacts>();
  for (const row of rows) {
    let index = byIndex.get(row.oid);
    if (!index) {
      index = { oid: row.oid, reltuples: row.reltuples, fillfactor: row.fillfactor, blockSize: row.blockSize, deduplicates: row.deduplicates, columns: [] };
      byIndex.set(row.oid, index);
    }
    index.columns.push(row.hasStats ? { nullFrac: row.nullFrac, avgWidth: row.avgWidth, nDistinct: row.nDistinct, commonFreqs: row.commonFreqs ?? [] } : null);
  }
  return [...byIndex.values()];
}
