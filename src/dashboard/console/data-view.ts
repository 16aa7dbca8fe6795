import { formatBytes } from "../../db-report/format-size.js";
import { type Html, html } from "./html.js";

/**
 * Renders plain data (what a db-report section, a history search or the
 * audit log returns) as tables: an array of objects becomes a table with a
 * column per key, an object a list of its fields, with nested arrays as
 * tables of their own. Fields named `bytes` or `…Bytes` are shown as sizes.
 */
type Row = Record<string, unknown>;

const isRow = (value: unknown): value is Row => typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);

function cell(key: string, value: unknown): Html {
  if (value === null || value === undefined) return html`<td class="muted">-</td>`;
  if (typeof value === "number") return html`<td class="num">${/(^b|B)ytes$/.test(key) ? formatBytes(value) : value.toLocaleString("en-US")}</td>`;
  if (value instanceof Date) return html`<td>${value.toISOString()}</td>`;
  if (typeof value === "object") return html`<td><code>${JSON.stringify(value)}</code></td>`;
  return html`<td>${String(value)}</td>`;
}

/** A table of rows; `columns` defaults to every key any row has. `rowClass` marks rows (e.g. "warn"). */
export function rowsTable<R extends object>(rows: readonly R[], options: { columns?: string[]; rowClass?: (row: R) => string | undefined } = {}): Html {
  if (rows.length === 0) return html`<p class="muted">(none)</p>`;
  const columns = options.columns ?? [...new Set(rows.flatMap((row) => Object.keys(row)))];
  return html`<table>
<thead><tr>${columns.map((column) => html`<th>${column}</th>`)}</tr></thead>
<tbody>${rows.map(
    (row) => html`<tr class="${options.rowClass?.(row) ?? ""}">${columns.map((column) => cell(column, (row as Record<string, unknown>)[column]))}</tr>`,
  )}</tbody>
</table>`;
}

export function dataView(value: unknown): Html {
  if (Array.isArray(value)) {
    if (value.every(isRow)) return rowsTable(value);
    return html`<p>${value.map(String).join(", ")}</p>`;
  }
  if (!isRow(value)) return html`<p>${String(value ?? "-")}</p>`;
  const scalars = Object.entries(value).filter(([, field]) => !Array.isArray(field) && !isRow(field));
  const nested = Object.entries(value).filter(([, field]) => Array.isArray(field) || isRow(field));
  return html`${scalars.length ? rowsTable([Object.fromEntries(scalars)]) : ""}
${nested.map(([key, field]) => html`<h3>${key}</h3>${dataView(field)}`)}`;
}
