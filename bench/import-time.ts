import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { packageRoot } from "../src/lib/paths.js";
import { benchRun } from "./bench-run.js";
import { type BenchRow, type BenchSection, pairedRatio } from "./bench-section.js";
import { pairedRounds } from "./paired-rounds.js";

/**
 * Import time of the built package entries (issue 16 item 3): how long
 * `await import()` of dist/src/index.js (the main entry, `dbjobs`, what a
 * producer application loads) takes in a fresh node process, timed inside
 * that process around the import alone (node's own start-up is not counted).
 * dist/src/worker.js (`dbjobs/worker`) is reported for reference, and
 * `bullmq` alone, the one dependency a producer cannot do without, is the
 * baseline each round pairs them with: on this machine even that takes
 * hundreds of milliseconds when it is busy. Before the redesign the main
 * entry took 440–470 ms on this machine; the goal is under 100 ms.
 */
const RUNS = Number(process.env.BENCH_IMPORT_RUNS ?? 9);

// Imports argv[1] and prints the milliseconds and the CPU the import took.
const timeImport = `
const cpu = process.cpuUsage();
const start = performance.now();
await import(process.argv[1]);
const ms = performance.now() - start;
const used = process.cpuUsage(cpu);
process.stdout.write(JSON.stringify({ ms, cpuMs: (used.user + used.system) / 1000 }));`;

interface Import {
  ms: number;
  cpuMs: number;
}

function importInFreshProcess(specifier: string): Promise<Import> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      ["--input-type=module", "--eval", timeImport, specifier],
      { cwd: packageRoot, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`importing ${specifier} failed: ${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as Import);
      },
    );
    benchRun.trackChild(child);
  });
}

const built = (path: string) => {
  const file = join(packageRoot, "dist", "src", path);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first (\`npm run bench\` does)`);
  return pathToFileURL(file).href;
};

export const importTimeBench: BenchSection = {
  name: "import-time",
  async run(): Promise<BenchRow[]> {
    const main = built("index.js");
    const worker = built("worker.js");
    const paired = await pairedRounds({
      label: "import-time",
      rounds: RUNS,
      warmUpRounds: 1,
      baseline: () => importInFreshProcess("bullmq"),
      subject: () => importInFreshProcess(main),
      others: { worker: () => importInFreshProcess(worker) },
      // Lower is better: the entry's time as a multiple of bullmq's alone.
      ratio: (bullmq, entry) => entry.ms / bullmq.ms,
      show: (run) => `${Math.round(run.ms)} ms (${Math.round(run.cpuMs)} ms cpu)`,
    });
    const rounds = paired.rounds.length;
    const mainMs = paired.spreadOf((round) => round.subject.ms);
    const workerMs = paired.spreadOf((round) => (round.others.worker as Import).ms);
    const bullmqMs = paired.spreadOf((round) => round.baseline.ms);
    return [
      {
        name: `import of the main entry dist/src/index.js in a fresh node process (median of ${rounds}; 440 ms before the redesign)`,
        value: mainMs.median,
        unit: "ms",
        valueRange: { min: mainMs.min, max: mainMs.max, runs: rounds },
        goal: "< 100 ms",
        met: mainMs.median < 100,
      },
      {
        name: "same, vs importing bullmq alone in the same rounds (ratio = main entry / bullmq per round; informational)",
        value: mainMs.median,
        unit: "ms",
        baseline: bullmqMs.median,
        ...pairedRatio(paired.ratio, rounds),
      },
      {
        name: "same, CPU time of the import (informational)",
        value: paired.spreadOf((round) => round.subject.cpuMs).median,
        unit: "ms",
        baseline: paired.spreadOf((round) => round.baseline.cpuMs).median,
        ...pairedRatio(
          paired.spreadOf((round) => round.subject.cpuMs / round.baseline.cpuMs),
          rounds,
        ),
      },
      {
        name: `import of dist/src/worker.js (dbjobs/worker: Prisma, pg and every handler), for reference (median of ${rounds})`,
        value: workerMs.median,
        unit: "ms",
        valueRange: { min: workerMs.min, max: workerMs.max, runs: rounds },
        baseline: bullmqMs.median,
        ...pairedRatio(paired.others.worker ?? paired.ratio, rounds),
      },
    ];
  },
};
