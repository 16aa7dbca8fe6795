import type { BenchRow } from "./bench-section.js";

/**
 * One line of the bench's report, as the terminal table and the figures in
 * docs/benchmarks.md both show it: the same text, so the two cannot differ.
 */
export interface ReportLine {
  section: string;
  measure: string;
  value: string;
  baseline: string;
  "ratio min / median / max": string;
  goal: string;
  met: string;
}

export interface StoredSection {
  ranAt: string;
  rows: BenchRow[];
}

const format = (value: number | undefined, digits = 2) =>
  value === undefined || Number.isNaN(value) ? "" : value.toLocaleString("en-US", { maximumFractionDigits: digits });

export function reportLines(results: Record<string, BenchRow[]>): ReportLine[] {
  return Object.entries(results).flatMap(([section, rows]) =>
    rows.map((row) => ({
      section,
      measure: row.name,
      value:
        `${format(row.value)} ${row.unit}`.trim() +
        (row.valueRange ? ` (${format(row.valueRange.min)}–${format(row.valueRange.max)}, ${row.valueRange.runs} runs)` : ""),
      baseline: row.baseline === undefined ? "" : `${format(row.baseline)} ${row.unit}`.trim(),
      "ratio min / median / max": row.ratioRange
        ? `${format(row.ratioRange.min, 3)} / ${format(row.ratio, 3)} / ${format(row.ratioRange.max, 3)} (${row.ratioRange.rounds} rounds)`
        : format(row.ratio, 3),
      goal: row.goal ?? "",
      met: row.met === undefined ? "" : row.met ? "yes" : "NO",
    })),
  );
}

const cell = (text: string) => text.replace(/\|/g, "\\|");

/** The figures block of docs/benchmarks.md: one table per section, each with the date of the run that measured it. */
export function figuresMarkdown(sections: Record<string, StoredSection>): string {
  const parts = Object.entries(sections).map(([name, section]) => {
    const lines = reportLines({ [name]: section.rows });
    const table = lines.map(
      (line) => `| ${[line.measure, line.value, line.baseline, line["ratio min / median / max"], line.goal, line.met].map(cell).join(" | ")} |`,
    );
    return [
      `### \`${name}\` (run ${section.ranAt.slice(0, 10)})`,
      "",
      "| measure | value | baseline | ratio min / median / max | goal | met |",
      "|---|---|---|---|---|---|",
      ...table,
    ].join("\n");
  });
  return parts.join("\n\n");
}
