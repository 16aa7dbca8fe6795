import type { OwnTable, Queryable } from "./own-tables.js";

/**
 * Which tables need ANALYZE, decided the way autovacuum decides it:
 *
 *   n_mod_since_analyze > autovacuum_analyze_threshold
 *                         + autovacuum_analyze_scale_factor × reltuples
 *
 * with the table's own reloptions taking precedence over the server settings.
 * Partitioned parents are always included: autovacuum never analyzes them (it
 * only sees the partitions that hold rows), so their statistics, which the
 * planner uses for queries on the parent, go stale forever. In PostgreSQL
 * 15, ANALYZE of a parent also samples each of its partitions, so a partition
 * under a parent we analyze is not listed a second time.
 */
export interface AnalyzeCandidate {
  table: string;
  qualified: string;
  kind: "r" | "p";
  modsSinceAnalyze: number;
  estimatedRows: number;
  threshold: number;
  lastAnalyzedAt: Date | null;
  reason: string;
}

interface TableStats {
  oid: number;
  modsSinceAnalyze: number;
  estimatedRows: number;
  threshold: number;
  lastAnalyzedAt: Date | null;
}

// Takes $1 the oids of the tables in scope. Returns per table the changes
// since its last analyze, its estimated rows and its analyze threshold with
// per-table reloptions (autovacuum_analyze_threshold / _scale_factor) over
// the server settings. reltuples is -1 for a table never vacuumed/analyzed.
const tableStatsSql = `
SELECT c.oid::int AS oid,
       coalesce(s.n_mod_since_analyze, 0)::float8 AS "modsSinceAnalyze",
       greatest(c.reltuples, 0)::float8 AS "estimatedRows",
       (coalesce((SELECT o.option_value FROM pg_options_to_table(c.reloptions) o WHERE o.option_name = 'autovacuum_analyze_threshold'),
                 current_setting('autovacuum_analyze_threshold'))::float8
        + coalesce((SELECT o.option_value FROM pg_options_to_table(c.reloptions) o WHERE o.option_name = 'autovacuum_analyze_scale_factor'),
                   current_setting('autovacuum_analyze_scale_factor'))::float8
          * greatest(c.reltuples, 0))::float8 AS threshold,
       greatest(s.last_analyze, s.last_autoanalyze) AS "lastAnalyzedAt"
  FROM pg_class c
  LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
 WHERE c.oid = ANY($1::oid[])`;

export async function analyzeCandidates(client: Queryable, scope: readonly OwnTable[]): Promise<AnalyzeCandidate[]> {
  const { rows } = await client.query<TableStats>(tableStatsSql, [scope.map((table) => table.oid)]);
  const stats = new Map(rows.map((row) => [row.oid, row]));
  const parents = new Set(scope.filter((table) => table.kind === "p").map((table) => table.name));
  const candidates: AnalyzeCandidate[] = [];

  for (const table of scope) {
    const stat = stats.get(table.oid);
    if (!stat) continue;
    const base = {
      table: table.name,
      qualified: table.qualified,
      kind: table.kind,
      modsSinceAnalyze: stat.modsSinceAnalyze,
      estimatedRows: stat.estimatedRows,
      threshold: Math.round(stat.threshold * 10) / 10,
      lastAnalyzedAt: stat.lastAnalyzedAt,
    };
    if (table.kind === "p") {
      if (table.rootParent !== null && parents.has(table.rootParent)) continue;
      const partitions = scope.filter((other) => other.rootParent === table.name).length;
      candidates.push({
        ...base,
        reason: `partitioned parent: autovacuum never analyzes it (ANALYZE also samples its ${partitions} partition${partitions === 1 ? "" : "s"})`,
      });
      continue;
    }
    if (table.rootParent !== null && parents.has(table.rootParent)) continue;
    if (stat.modsSinceAnalyze > stat.threshold) {
      candidates.push({ ...base, reason: `${stat.modsSinceAnalyze} rows changed since the last analyze > threshold ${base.threshold}` });
    }
  }
  return candidates;
}
