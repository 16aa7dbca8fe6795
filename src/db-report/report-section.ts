import type { Db } from "../lib/db.js";

/**
 * One section of `dbjobs db report`. Each section collects its data with
 * read-only catalog/statistics queries and renders it for a terminal;
 * `--json` prints what `collect` returned.
 */
export interface ReportSection<Data = unknown> {
  /** Key in the JSON output, camelCase. */
  key: string;
  title: string;
  collect(db: Db): Promise<Data>;
  render(data: Data): string;
}

export function defineSection<Data>(section: ReportSection<Data>): ReportSection<Data> {
  return section;
}

/** Renders rows as an aligned text table. */
export function textTable(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return "  (none)";
  const columns = Object.keys(rows[0] as object);
  const cells = rows.map((row) => columns.map((column) => String(row[column] ?? "")));
  const widths = columns.map((column, index) => Math.max(column.length, ...cells.map((line) => (line[index] ?? "").length)));
  const line = (values: string[]) => `  ${values.map((value, index) => value.padEnd(widths[index] ?? 0)).join("  ")}`.trimEnd();
  return [line(columns), line(widths.map((width) => "-".repeat(width))), ...cells.map(line)].join("\n");
}
