import { analyzeOverdueSection } from "./analyze-overdue.js";
import { archiveCountsSection } from "./archive.js";
import { cacheHitSection } from "./cache-hit.js";
import { failedTransactionsSection } from "./failed-transactions.js";
import { indexBloatSection } from "./index-bloat.js";
import { indexSizesSection, unusedIndexesSection } from "./index-usage.js";
import { defaultPartitionRowsSection, partitionsSection } from "./partitions.js";
import type { ReportSection } from "./report-section.js";
import { tableSizesSection } from "./table-sizes.js";

/** The sections of `dbjobs db report`, in display order. Add one line per section. */
export const reportSections: ReportSection[] = [
  // partition-maintenance and archiving (seed 000 "Table Partitioning", "Archive Strategy")
  partitionsSection,
  defaultPartitionRowsSection,
  archiveCountsSection,
  failedTransactionsSection,
  // db-maintenance (seeds 000/003 monitoring queries)
  tableSizesSection,
  indexSizesSection,
  unusedIndexesSection,
  cacheHitSection,
  analyzeOverdueSection,
  indexBloatSection,
];
