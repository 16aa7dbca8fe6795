import { formatBytes } from "./format-size.js";
import { defineSection, textTable } from "./report-section.js";

/**
 * Index sizes and unused indexes (seed 000 "Monitor Index Usage", seeds 001
 * and 003 "Check Index Usage"). Scan counts are cumulative since the
 * statistics were last reset (shown), so an index that looks unused on a
 * freshly reset server may just not have been needed yet. Primary keys and
 * unique indexes are never listed as unused: they enforce constraints even
 * when no query reads them.
 */
export interface IndexUsage {
  index: string;
  table: string;
  bytes: number;
  scans: number;
  tuplesRead: number;
  unique: boolean;
  primary: boolean;
}

export interface UnusedIndexes {
  /** When this database's statistics were last reset (null: never). */
  statsResetAt: Date | null;
  indexes: IndexUsage[];
}

// Takes nothing. Returns every index in public with its size and scan
// counters, largest first. Partitioned indexes have no storage or counters
// of their own; their partitions' indexes are listed.
const indexUsageSql = `
SELECT s.indexrelname AS "index",
       s.relname AS "table",
       pg_relation_size(s.indexrelid)::float8 AS bytes,
       s.idx_scan::float8 AS scans,
       s.idx_tup_read::float8 AS "tuplesRead",
       i.indisunique AS "unique",
       i.indisprimary AS "primary"
  FROM pg_stat_user_indexes s
  JOIN pg_index i ON i.indexrelid = s.indexrelid
 WHERE s.schemaname = 'public'
 ORDER BY pg_relation_size(s.indexrelid) DESC, s.indexrelname`;

// Takes nothing. Returns when this database's statistics were last reset.
const statsResetSql = 'SELECT stats_reset AS "statsResetAt" FROM pg_stat_database WHERE datname = current_database()';

export const indexSizesSection = defineSection<IndexUsage[]>({
  key: "indexSizes",
  title: "Index sizes (largest first) with scans since the statistics reset",
  async collect({ pool }) {
    return (await pool.query<IndexUsage>(indexUsageSql)).rows;
  },
  render(rows) {
    return textTable(rows.map((row) => ({ index: row.index, table: row.table, size: formatBytes(row.bytes), scans: row.scans, tuplesRead: row.tuplesRead })));
  },
});

export const unusedIndexesSection = defineSection<UnusedIndexes>({
  key: "unusedIndexes",
  title: "Unused indexes (idx_scan = 0; primary keys and unique indexes excluded)",
  async collect({ pool }) {
    const indexes = (await pool.query<IndexUsage>(indexUsageSql)).rows.filter((row) => row.scans === 0 && !row.unique && !row.primary);
    const reset = (await pool.query<{ statsResetAt: Date | null }>(statsResetSql)).rows[0];
    return { statsResetAt: reset?.statsResetAt ?? null, indexes };
  },
  render(data) {
    const since = data.statsResetAt ? `  (scans counted since ${data.statsResetAt.toISOString()})\n` : "";
    return since + textTable(data.indexes.map((row) => ({ index: row.index, table: row.table, size: formatBytes(row.bytes) })));
  },
});
