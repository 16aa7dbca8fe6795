import { quoteIdent } from "../lib/db.js";
import { defaultPartitionOf, listPartitions } from "../partitions/catalog.js";
import { partitionRows } from "./partitions.js";
import { defineSection, textTable } from "./report-section.js";

/**
 * The archive's rows per year (seed 000, "Archive Strategy"). Monthly
 * partitions are summed by the year they start in (exact counts up to
 * 100 MB each, the planner's estimate above); rows in the archive's default
 * partition are counted per year exactly.
 */
export interface ArchiveYear {
  year: number;
  rows: number;
  /** False when some partition of that year was estimated. */
  exact: boolean;
}

export interface ArchiveReport {
  total: number;
  byYear: ArchiveYear[];
}

export const archiveCountsSection = defineSection<ArchiveReport>({
  key: "archive",
  title: "transactions_archive rows per year (UTC)",
  async collect({ pool }) {
    const client = await pool.connect();
    try {
      const years = new Map<number, ArchiveYear>();
      const add = (year: number, rows: number, exact: boolean) => {
        const entry = years.get(year) ?? { year, rows: 0, exact: true };
        entry.rows += rows;
        entry.exact &&= exact;
        years.set(year, entry);
      };
      for (const partition of await partitionRows(client, "transactions_archive")) {
        if (partition.from && partition.rows > 0) add(Number(partition.from.slice(0, 4)), partition.rows, partition.rowsExact);
      }
      const archiveDefault = defaultPartitionOf(await listPartitions(client, "transactions_archive"));
      if (archiveDefault) {
        // Returns the default partition's rows per UTC year.
        const { rows } = await client.query<{ year: number; rows: number }>(
          `SELECT extract(year FROM "createdAt" AT TIME ZONE 'UTC')::int AS year, count(*)::float8 AS rows FROM ${quoteIdent(archiveDefault.name)} GROUP BY 1`,
        );
        for (const row of rows) add(row.year, row.rows, true);
      }
      const byYear = [...years.values()].sort((a, b) => a.year - b.year);
      return { total: byYear.reduce((sum, year) => sum + year.rows, 0), byYear };
    } finally {
      client.release();
    }
  },
  render(report) {
    return `${textTable(report.byYear.map((year) => ({ year: year.year, rows: year.exact ? String(year.rows) : `~${year.rows}` })))}\n  total: ${report.total}`;
  },
});
