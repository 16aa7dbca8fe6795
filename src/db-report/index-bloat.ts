import { type BloatMethod, estimateIndexBloat, type IndexBloat, minReindexBytes } from "../db-catalog/index-bloat.js";
import { resolveScope } from "../db-catalog/own-tables.js";
import { formatBytes } from "./format-size.js";
import { defineSection, textTable } from "./report-section.js";

/**
 * Indexes over the bloat threshold: what the next REINDEX run of
 * db-maintenance rebuilds at its default minBloatRatio, with the method used
 * (pgstatindex when pgstattuple is installed, else the statistics estimate).
 */
export const reportBloatRatio = 1.5;

export interface IndexBloatReport {
  method: BloatMethod;
  minBloatRatio: number;
  minIndexBytes: number;
  bloated: IndexBloat[];
  /** Indexes whose bloat cannot be estimated now (table never analyzed, or its lock busy). */
  unknown: string[];
}

export const indexBloatSection = defineSection<IndexBloatReport>({
  key: "indexBloat",
  title: `Indexes over the bloat threshold (≥ ${reportBloatRatio}× a fresh build, indexes ≥ ${formatBytes(minReindexBytes)})`,
  async collect({ pool }) {
    const { method, indexes, unavailable } = await estimateIndexBloat(pool, await resolveScope(pool, undefined));
    return {
      method,
      minBloatRatio: reportBloatRatio,
      minIndexBytes: minReindexBytes,
      bloated: indexes.filter((index) => index.ratio !== null && index.ratio >= reportBloatRatio),
      unknown: [...indexes.filter((index) => index.ratio === null).map((index) => index.index), ...unavailable.map((entry) => entry.index)],
    };
  },
  render(data) {
    const lines = [
      `  method: ${data.method}`,
      textTable(
        data.bloated.map((index) => ({
          index: index.index,
          table: index.table,
          size: formatBytes(index.bytes),
          freshEstimate: index.estimatedBytes === null ? "?" : formatBytes(index.estimatedBytes),
          ratio: `${index.ratio}×`,
        })),
      ),
    ];
    if (data.unknown.length > 0) lines.push(`  not estimated (table never analyzed, or locked): ${data.unknown.join(", ")}`);
    return lines.join("\n");
  },
});
