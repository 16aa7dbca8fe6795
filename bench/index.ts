import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../src/lib/paths.js";
import type { BenchRow } from "./bench-section.js";
import { benchSections } from "./sections.js";

/**
 * `npm run bench [-- --only name,name]`: runs each section, prints one table
 * of figures and ratios taken in this run, and writes bench/results.json.
 * With --only, the other sections' rows already in that file are kept, each
 * with the time of the run that measured it.
 */
const onlyIndex = process.argv.indexOf("--only");
const only = onlyIndex >= 0 ? new Set((process.argv[onlyIndex + 1] ?? "").split(",")) : undefined;

interface StoredSection {
  ranAt: string;
  rows: BenchRow[];
}

const resultsPath = join(packageRoot, "bench", "results.json");
const results: Record<string, BenchRow[]> = {};
for (const section of benchSections) {
  if (only && !only.has(section.name)) continue;
  process.stderr.write(`bench: ${section.name}…\n`);
  try {
    results[section.name] = await section.run();
  } catch (err) {
    process.stderr.write(`bench: ${section.name} failed: ${(err as Error).stack}\n`);
    results[section.name] = [{ name: `${section.name} failed: ${(err as Error).message}`, value: Number.NaN, unit: "", met: false }];
  }
}

const format = (value: number | undefined, digits = 2) =>
  value === undefined || Number.isNaN(value) ? "" : value.toLocaleString("en-US", { maximumFractionDigits: digits });
const rows = Object.entries(results).flatMap(([section, sectionRows]) =>
  sectionRows.map((row) => ({
    section,
    measure: row.name,
    value: `${format(row.value)} ${row.unit}`.trim(),
    baseline: row.baseline === undefined ? "" : `${format(row.baseline)} ${row.unit}`.trim(),
    ratio: format(row.ratio),
    goal: row.goal ?? "",
    met: row.met === undefined ? "" : row.met ? "yes" : "NO",
  })),
);
console.table(rows);
const ranAt = new Date().toISOString();
const kept: Record<string, StoredSection> =
  only && existsSync(resultsPath) ? ((JSON.parse(readFileSync(resultsPath, "utf8")) as { sections?: Record<string, StoredSection> }).sections ?? {}) : {};
const sections: Record<string, StoredSection> = { ...kept };
for (const [name, sectionRows] of Object.entries(results)) sections[name] = { ranAt, rows: sectionRows };
writeFileSync(resultsPath, `${JSON.stringify({ sections }, null, 2)}\n`);
process.exit(0);
