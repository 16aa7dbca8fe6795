import { listAudit } from "../../audit/list-audit.js";
import { rowsTable } from "./data-view.js";
import { html } from "./html.js";
import { definePage } from "./page.js";

/** Audit: every operator action from the CLI or the browser, newest first (as `dbjobs audit`). */
export const auditPage = definePage({
  path: "/audit",
  title: "Audit",
  load: (services) => listAudit(services.db.pool, { limit: 500 }),
  render: (rows) =>
    html`<p class="muted">The newest 500 operator actions; <code>dbjobs audit --json</code> gives them all.</p>
${rowsTable(rows, { columns: ["at", "actor", "source", "action", "target", "parameters", "affected", "outcome"], rowClass: (row) => (row.outcome === "ok" ? undefined : "warn") })}`,
});
