import { reportSections } from "../../db-report/sections.js";
import { dataView } from "./data-view.js";
import { html } from "./html.js";
import { definePage } from "./page.js";

/**
 * Database: the sections of `dbjobs db report` (src/db-report/): partitions
 * with row counts including the default partitions, archive progress, table
 * and index sizes, unused indexes, bloat. A section that fails shows its
 * error and the others still render.
 */
interface SectionResult {
  key: string;
  title: string;
  data?: unknown;
  error?: string;
}

export const databasePage = definePage<SectionResult[]>({
  path: "/database",
  title: "Database",
  async load(services) {
    const results: SectionResult[] = [];
    for (const section of reportSections) {
      try {
        results.push({ key: section.key, title: section.title, data: await section.collect(services.db) });
      } catch (err) {
        results.push({ key: section.key, title: section.title, error: (err as Error).message });
      }
    }
    return results;
  },
  render(sections) {
    return html`<p class="muted">What <code>dbjobs db report</code> prints; <code>dbjobs db report --json</code> gives the same data.</p>
<p>${sections.map((section) => html`<a href="#${section.key}">${section.title.split(" (")[0]}</a> · `)}</p>
${sections.map(
  (section) => html`<section id="${section.key}"><h2>${section.title}</h2>
${section.error === undefined ? dataView(section.data) : html`<p class="error">Could not read this section: ${section.error}</p>`}</section>`,
)}`;
  },
});
