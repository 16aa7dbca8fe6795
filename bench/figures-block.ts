import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../src/lib/paths.js";
import { figuresMarkdown, type StoredSection } from "./report-rows.js";

/**
 * docs/benchmarks.md carries the committed bench/results.json as tables
 * between two markers; `npm run bench` rewrites them, and
 * test/docs.bench-figures.test.ts fails when they differ from the file.
 */
export const figuresBegin = "<!-- figures:begin: written by `npm run bench` from bench/results.json; do not edit -->";
export const figuresEnd = "<!-- figures:end -->";
export const benchmarksDoc = join(packageRoot, "docs", "benchmarks.md");
export const resultsFile = join(packageRoot, "bench", "results.json");

export function renderedFigures(): string {
  const { sections } = JSON.parse(readFileSync(resultsFile, "utf8")) as { sections: Record<string, StoredSection> };
  return `${figuresBegin}\n\n${figuresMarkdown(sections)}\n\n${figuresEnd}`;
}

/** The block as docs/benchmarks.md has it now, markers included. */
export function documentedFigures(doc = readFileSync(benchmarksDoc, "utf8")): string {
  const begin = doc.indexOf(figuresBegin);
  const end = doc.indexOf(figuresEnd);
  if (begin < 0 || end < begin) throw new Error(`docs/benchmarks.md has no figures block (${figuresBegin} … ${figuresEnd})`);
  return doc.slice(begin, end + figuresEnd.length);
}

export function writeFigures(): void {
  const doc = readFileSync(benchmarksDoc, "utf8");
  writeFileSync(benchmarksDoc, doc.replace(documentedFigures(doc), renderedFigures()));
}
