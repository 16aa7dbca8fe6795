import { formatPercent } from "./format-size.js";
import { defineSection, textTable } from "./report-section.js";

/**
 * Buffer cache hit rates (seed 000 "Index hit rate (should be >99%)", seed
 * 003 "Cache hit ratio"): the share of block reads served from shared
 * buffers, for tables and for indexes, overall and for the tables read most
 * from disk. Null when nothing has been read yet.
 */
export interface CacheHitRates {
  tableHitRate: number | null;
  indexHitRate: number | null;
  /** Tables with the most blocks read from disk (top 10). */
  tables: { table: string; tableHitRate: number | null; indexHitRate: number | null; diskBlocksRead: number }[];
}

// Takes nothing. Returns overall heap and index hit rates over our tables in public.
const overallSql = `
SELECT (sum(heap_blks_hit) / nullif(sum(heap_blks_hit + heap_blks_read), 0))::float8 AS "tableHitRate",
       (sum(idx_blks_hit) / nullif(sum(idx_blks_hit + idx_blks_read), 0))::float8 AS "indexHitRate"
  FROM pg_statio_user_tables
 WHERE schemaname = 'public'`;

// Takes nothing. Returns the 10 tables with the most blocks read from disk, with their hit rates.
const perTableSql = `
SELECT relname AS "table",
       (heap_blks_hit::numeric / nullif(heap_blks_hit + heap_blks_read, 0))::float8 AS "tableHitRate",
       (idx_blks_hit::numeric / nullif(idx_blks_hit + idx_blks_read, 0))::float8 AS "indexHitRate",
       (coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0))::float8 AS "diskBlocksRead"
  FROM pg_statio_user_tables
 WHERE schemaname = 'public'
 ORDER BY coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0) DESC, relname
 LIMIT 10`;

export const cacheHitSection = defineSection<CacheHitRates>({
  key: "cacheHitRates",
  title: "Cache hit rates (should stay above 99%)",
  async collect({ pool }) {
    const overall = (await pool.query<{ tableHitRate: number | null; indexHitRate: number | null }>(overallSql)).rows[0];
    const tables = (await pool.query<CacheHitRates["tables"][number]>(perTableSql)).rows;
    return { tableHitRate: overall?.tableHitRate ?? null, indexHitRate: overall?.indexHitRate ?? null, tables };
  },
  render(data) {
    return [
      `  tables: ${formatPercent(data.tableHitRate)}   indexes: ${formatPercent(data.indexHitRate)}`,
      "  Most read from disk:",
      textTable(
        data.tables.map((row) => ({
          table: row.table,
          tableHits: formatPercent(row.tableHitRate),
          indexHits: formatPercent(row.indexHitRate),
          diskBlocksRead: row.diskBlocksRead,
        })),
      ),
    ].join("\n");
  },
});
