import { formatBytes } from "./format-size.js";
import { defineSection, textTable } from "./report-section.js";

/**
 * Table sizes (seed 000 "PostgreSQL Monitoring", seed 003 "Database Metrics"):
 * every table of ours in schema public, largest first. A partitioned parent
 * holds no rows itself; its figures are the sums over its partitions, which
 * are listed too.
 */
export interface TableSize {
  table: string;
  /** `table`, `partitioned` or `partition of <parent>`. */
  kind: string;
  estimatedRows: number;
  totalBytes: number;
  tableBytes: number;
  indexBytes: number;
  toastBytes: number;
}

// Takes nothing. Returns per table of ours in public: estimated rows and
// heap/index/TOAST/total bytes; a partitioned parent sums its partition tree.
const tableSizesSql = `
SELECT c.relname AS "table",
       CASE WHEN c.relkind = 'p' THEN 'partitioned'
            WHEN c.relispartition THEN 'partition of ' || (SELECT p.inhparent::regclass::text FROM pg_inherits p WHERE p.inhrelid = c.oid LIMIT 1)
            ELSE 'table' END AS kind,
       sums.rows::float8 AS "estimatedRows",
       sums.total::float8 AS "totalBytes",
       sums.heap::float8 AS "tableBytes",
       sums.idx::float8 AS "indexBytes",
       (sums.total - sums.heap - sums.idx)::float8 AS "toastBytes"
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL (
    SELECT coalesce(sum(greatest(t.reltuples, 0)) FILTER (WHERE t.relkind <> 'p'), 0) AS rows,
           coalesce(sum(pg_total_relation_size(t.oid)), 0) AS total,
           coalesce(sum(pg_relation_size(t.oid)), 0) AS heap,
           coalesce(sum(pg_indexes_size(t.oid)), 0) AS idx
      FROM (SELECT c.oid AS relid UNION SELECT tree.relid FROM pg_partition_tree(c.oid) tree WHERE tree.isleaf) members
      JOIN pg_class t ON t.oid = members.relid
  ) sums
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'm')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY sums.total DESC, c.relname`;

export const tableSizesSection = defineSection<TableSize[]>({
  key: "tableSizes",
  title: "Table sizes (largest first; a partitioned table sums its partitions)",
  async collect({ pool }) {
    return (await pool.query<TableSize>(tableSizesSql)).rows;
  },
  render(rows) {
    return textTable(
      rows.map((row) => ({
        table: row.table,
        kind: row.kind,
        rows: Math.round(row.estimatedRows),
        total: formatBytes(row.totalBytes),
        heap: formatBytes(row.tableBytes),
        indexes: formatBytes(row.indexBytes),
        toast: formatBytes(row.toastBytes),
      })),
    );
  },
});
