import { type AnalyzeCandidate, analyzeCandidates } from "../db-catalog/analyze-candidates.js";
import { resolveScope } from "../db-catalog/own-tables.js";
import { defineSection, textTable } from "./report-section.js";

/**
 * Tables overdue for ANALYZE: what the next db-maintenance run would analyze,
 * by the same autovacuum-style rule (changes since the last analyze past
 * threshold + scale factor × rows, per-table settings honoured), plus the
 * partitioned parents autovacuum never analyzes.
 */
export const analyzeOverdueSection = defineSection<AnalyzeCandidate[]>({
  key: "analyzeOverdue",
  title: "Tables overdue for ANALYZE (what the next db-maintenance run analyzes)",
  async collect({ pool }) {
    return analyzeCandidates(pool, await resolveScope(pool, undefined));
  },
  render(rows) {
    return textTable(
      rows.map((row) => ({
        table: row.table,
        changed: row.modsSinceAnalyze,
        threshold: row.threshold,
        lastAnalyzed: row.lastAnalyzedAt ? new Date(row.lastAnalyzedAt).toISOString() : "never",
        reason: row.reason,
      })),
    );
  },
});
