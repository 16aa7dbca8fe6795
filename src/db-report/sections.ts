import { failedTransactionsSection } from "./failed-transactions.js";
import type { ReportSection } from "./report-section.js";

/** The sections of `dbjobs db report`, in display order. Add one line per section. */
export const reportSections: ReportSection[] = [failedTransactionsSection];
