import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../src/lib/paths.js";
import type { BenchRow } from "./bench-section.js";
import { benchSections } from "./sections.js";

/**
 * `npm run bench [-- --only name,name]`: runs each section, prints one table
 * of figures and ratios taken in this run, and writes bench/results.json.
 */
const onlyIndex = process.argv.indexOf("--only");
const only = onlyIndex >= 0 ? new Set((process.argv[onlyIndex + 1] ?? "").split(",")) : undefined;

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
writeFileSync(join(packageRoot, "bench", "results.json"), `${JSON.stringify({ ranAt: new Date().toISOString(), results }, null, 2)}\n`);
process.exit(0);
