import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { benchRun } from "./bench-run.js";
import type { BenchRow } from "./bench-section.js";
import { resultsFile, writeFigures } from "./figures-block.js";
import { reportLines, type StoredSection } from "./report-rows.js";
import { benchSections } from "./sections.js";

/**
 * `npm run bench [-- --only name,name]`: runs each section, prints one table
 * of figures and paired ratios taken in this run, and writes
 * bench/results.json. With --only, the other sections' rows already in that
 * file are kept, each with the time of the run that measured it.
 *
 * Whatever happens (a section throws, Ctrl-C, SIGTERM), the databases, Redis
 * keys and child processes of this run are removed before the process ends,
 * and a last check counts what is left by the run's id.
 */
const onlyIndex = process.argv.indexOf("--only");
const only = onlyIndex >= 0 ? new Set((process.argv[onlyIndex + 1] ?? "").split(",")) : undefined;
const say = (line: string) => process.stderr.write(`bench: ${line}\n`);

/**
 * Removes this run's databases, keys and processes (once, however many paths
 * ask), then counts what is left by the run id. Returns that count.
 */
let finishing: Promise<number> | undefined;
const cleanUpAndCheck = () => {
  finishing ??= (async () => {
    for (const problem of await benchRun.cleanUp()) say(`could not remove ${problem}`);
    const leftovers = await benchRun.leftovers();
    const count = leftovers.databases.length + leftovers.redisKeys + leftovers.childProcesses;
    say(
      `left behind by run ${benchRun.id}: ${leftovers.databases.length} databases${leftovers.databases.length ? ` (${leftovers.databases.join(", ")})` : ""}, ` +
        `${leftovers.redisKeys} Redis keys, ${leftovers.childProcesses} child processes${count ? "  ← a bug: the bench must remove what it creates" : ""}`,
    );
    lastLeftovers = leftovers;
    return count;
  })();
  return finishing;
};
let lastLeftovers: Awaited<ReturnType<typeof benchRun.leftovers>> | undefined;

// ── Exit hooks: a signal or an error outside the sections still cleans up; a second signal ends at once. ──
let interrupted = false;
const endAfterCleanUp = (code: number) => {
  interrupted = true;
  void cleanUpAndCheck()
    .catch((err: unknown) => say(`clean-up failed: ${(err as Error).stack}`))
    .finally(() => process.exit(code));
};
process.once("exit", () => benchRun.killChildren());
let signals = 0;
for (const [signal, code] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
] as const) {
  process.on(signal, () => {
    if (++signals > 1) process.exit(code);
    say(`${signal}: removing this run's databases, keys and processes (again to stop at once)`);
    endAfterCleanUp(code);
  });
}
// While cleaning up, errors are expected (dropping a database ends its open connections): logged, not fatal.
const onFatal = (what: string, err: unknown) => {
  say(`${what}: ${(err as Error)?.stack ?? String(err)}`);
  if (!interrupted) endAfterCleanUp(1);
};
process.on("uncaughtException", (err) => onFatal("uncaught", err));
process.on("unhandledRejection", (err) => onFatal("unhandled rejection", err));

say(benchRun.describe());
const results: Record<string, BenchRow[]> = {};
let failed = false;
let leftoverCount = 0;
try {
  for (const section of benchSections) {
    if (only && !only.has(section.name)) continue;
    say(`${section.name}…`);
    try {
      results[section.name] = await section.run();
    } catch (err) {
      failed = true;
      say(`${section.name} failed: ${(err as Error).stack}`);
      results[section.name] = [{ name: `${section.name} failed: ${(err as Error).message}`, value: Number.NaN, unit: "", met: false }];
    }
  }
} finally {
  leftoverCount = await cleanUpAndCheck();
}

// Interrupted: the exit hook ends the process once clean; the rows of a cut-short run are not kept.
if (interrupted) await new Promise(() => undefined);

console.table(reportLines(results));

const resultsPath = resultsFile;
const ranAt = new Date().toISOString();
const kept: Record<string, StoredSection> =
  only && existsSync(resultsPath) ? ((JSON.parse(readFileSync(resultsPath, "utf8")) as { sections?: Record<string, StoredSection> }).sections ?? {}) : {};
const merged: Record<string, StoredSection> = { ...kept };
for (const [name, sectionRows] of Object.entries(results)) merged[name] = { ranAt, rows: sectionRows };
// In the order the sections run, whichever run measured them.
const order = benchSections.map((section) => section.name);
const sections = Object.fromEntries(Object.entries(merged).sort(([a], [b]) => order.indexOf(a) - order.indexOf(b)));
writeFileSync(resultsPath, `${JSON.stringify({ lastRun: { id: benchRun.id, ranAt, leftovers: lastLeftovers }, sections }, null, 2)}\n`);
writeFigures();
process.exit(failed || leftoverCount > 0 ? 1 : 0);
