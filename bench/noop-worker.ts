import { type Job, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { z } from "zod";
import { loadConfig } from "../src/lib/config.js";
import { createLogger } from "../src/lib/logger.js";
import type { AnyWorker } from "../src/lib/queue-store.js";
import { defaultJobOptions, defineContract } from "../src/queues/contract.js";
import { startWorker } from "../src/queues/start-worker.js";
import { benchRun } from "./bench-run.js";
import { type BenchRow, type BenchSection, pairedRatio } from "./bench-section.js";
import { pairedRounds } from "./paired-rounds.js";
import { benchPrefix, benchRedisUrl, collectGarbage } from "./support.js";

/**
 * No-op jobs through the project's worker runtime (startWorker: payload
 * validation, job context, child logger, progress/metrics hooks and logging
 * at the default level info, written to /dev/null; short jobs log their "job
 * completed" line at debug; job history off, since the history section
 * measures its cost) against a raw BullMQ Worker with an empty processor. Same Redis, same concurrency, same job options, same number of
 * jobs added the same way before the worker starts, each side on its own
 * fresh prefix.
 *
 * The clock: both sides are timed from the WARM_UP_JOBS-th job's completion
 * to the last job's, and the CPU this process spends is taken over the same
 * window. startWorker starts its worker at once (as `dbjobs worker` does) and
 * finishes starting up while the first jobs run; the raw worker is started
 * with run(); either way connecting and starting up fall before the window. A
 * full garbage collection runs after each side's queue is filled, so neither
 * side's window collects the other's or its own set-up's garbage.
 *
 * The headline is CPU per job, raw ÷ project, as the median of paired rounds:
 * on a shared machine wall time moves with other processes' load, CPU time
 * far less. Jobs/s is reported beside it, paired the same way. Many short
 * rounds pair better than a few long ones: the machine drifts less within
 * one. With BENCH_NOOP_WARN=1 the runtime at LOG_LEVEL=warn (no per-flush
 * summary line) joins the rounds as a third side; it is off by default, so
 * that the baseline and the subject always run next to each other.
 */
export const JOBS = Number(process.env.BENCH_NOOP_JOBS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_NOOP_ROUNDS ?? 25);
const WITH_WARN = process.env.BENCH_NOOP_WARN === "1";
export const CONCURRENCY = 8;
export const QUEUE = "bench-noop";

export const noopContract = defineContract<undefined>()({
  name: QUEUE,
  payload: z.object({ n: z.number().int() }).strict(),
  worker: { concurrency: CONCURRENCY },
});
export const noopHandler = async () => undefined;

// The contracts' retention options, so both sides do the same Redis work per job.
const jobOptions = { removeOnComplete: defaultJobOptions.removeOnComplete, removeOnFail: defaultJobOptions.removeOnFail };

export async function fill(connection: Redis, prefix: string): Promise<void> {
  const queue = new Queue(QUEUE, { connection, prefix });
  for (let start = 0; start < JOBS; start += 1000) {
    await queue.addBulk(Array.from({ length: Math.min(1000, JOBS - start) }, (_, i) => ({ name: QUEUE, data: { n: start + i }, opts: jobOptions })));
  }
  await queue.close();
}

/**
 * Jobs each side runs before its window opens: the worker's first requests,
 * and on the project's side the rest of its start-up (the control channel's
 * connection, the pooler check), which are once per process, not per job.
 */
export const WARM_UP_JOBS = Math.min(1000, Math.floor(JOBS / 10));

export interface Round {
  ms: number;
  /** CPU this process spent in the window (user + system), in µs. */
  cpuUs: number;
  /** Jobs completed in the window. */
  jobs: number;
}

/** The window from `worker`'s WARM_UP_JOBS-th completion to its JOBS-th: elapsed ms and this process's CPU. Attach before the first job can start. */
export function window(worker: AnyWorker): Promise<Round> {
  return new Promise((resolve, reject) => {
    let start = performance.now();
    let cpuBefore = process.cpuUsage();
    let done = 0;
    worker.on("completed", () => {
      done += 1;
      if (done === WARM_UP_JOBS) {
        cpuBefore = process.cpuUsage();
        start = performance.now();
      } else if (done === JOBS) {
        const ms = performance.now() - start;
        const cpu = process.cpuUsage(cpuBefore);
        resolve({ ms, cpuUs: cpu.user + cpu.system, jobs: JOBS - WARM_UP_JOBS });
      }
    });
    worker.on("failed", (_job, err) => reject(err));
  });
}

async function rawSide(connection: Redis): Promise<Round> {
  const prefix = benchPrefix();
  try {
    await fill(connection, prefix);
    collectGarbage();
    const workerConnection = new Redis(benchRedisUrl, { maxRetriesPerRequest: null });
    const worker = new Worker(QUEUE, async (_job: Job) => undefined, { connection: workerConnection, prefix, concurrency: CONCURRENCY, autorun: false });
    try {
      const measured = window(worker);
      void worker.run();
      return await measured;
    } finally {
      await worker.close();
      workerConnection.disconnect();
    }
  } finally {
    await benchRun.removeKeys(prefix, connection);
  }
}

/**
 * One round of the project's runtime on a fresh prefix: the queue filled,
 * `startWorker` on the Redis backend with `settings` (LOG_LEVEL,
 * DATABASE_URL, HISTORY_ENABLED…) over the defaults, timed by `window`.
 */
export async function projectRound(connection: Redis, settings: { LOG_LEVEL: string } & Record<string, string>): Promise<Round> {
  const prefix = benchPrefix();
  try {
    await fill(connection, prefix);
    collectGarbage();
    const config = loadConfig({ QUEUE_BACKEND: "redis", REDIS_URL: benchRedisUrl, DATABASE_URL: benchRun.adminUrl, QUEUE_PREFIX: prefix, ...settings });
    // As `dbjobs worker` logs: pino.destination (asynchronous SonicBoom), here to /dev/null.
    const logger = createLogger({ level: settings.LOG_LEVEL }, pino.destination({ dest: "/dev/null", sync: false }));
    const running = await startWorker(QUEUE, { config, logger, concurrency: CONCURRENCY, job: { contract: noopContract, handler: noopHandler } });
    try {
      // No job has started yet: the worker is still making its first requests.
      return await window(running.worker);
    } finally {
      await running.close();
    }
  } finally {
    await benchRun.removeKeys(prefix, connection);
  }
}

// History off: its cost has a section of its own (history.ts), and on this unmigrated database every flush would fail and retry.
const projectSide = (connection: Redis, level: "info" | "warn") => projectRound(connection, { LOG_LEVEL: level, HISTORY_ENABLED: "false" });

export const noopWorkerBench: BenchSection = {
  name: "noop-worker",
  async run(): Promise<BenchRow[]> {
    const connection = new Redis(benchRedisUrl, { maxRetriesPerRequest: null });
    try {
      const cpuPerJob = (round: Round) => round.cpuUs / round.jobs;
      const rate = (round: Round) => round.jobs / (round.ms / 1000);
      const paired = await pairedRounds({
        label: "noop-worker",
        rounds: ROUNDS,
        warmUpRounds: 1,
        baseline: () => rawSide(connection),
        subject: () => projectSide(connection, "info"),
        others: WITH_WARN ? { "project at warn": () => projectSide(connection, "warn") } : {},
        // Raw BullMQ's CPU per job ÷ ours: 1 means the runtime costs nothing on top.
        ratio: (raw, project) => cpuPerJob(raw) / cpuPerJob(project),
        show: (round) => `${Math.round(round.ms)} ms, ${cpuPerJob(round).toFixed(1)} µs cpu/job`,
      });
      const rounds = paired.rounds.length;
      const cpuRatio = paired.ratio;
      const rateRatio = paired.spreadOf((round) => rate(round.subject) / rate(round.baseline));
      const quiet = (round: (typeof paired.rounds)[number]) => round.others["project at warn"] as Round;
      const label = `${JOBS} jobs, the first ${WARM_UP_JOBS} untimed, concurrency ${CONCURRENCY}, ${rounds} paired rounds`;
      return [
        {
          name: `no-op job: worker process CPU per job, project (info) vs raw BullMQ (${label}; ratio = raw / project per round)`,
          value: paired.spreadOf((round) => cpuPerJob(round.subject)).median,
          unit: "µs/job",
          baseline: paired.spreadOf((round) => cpuPerJob(round.baseline)).median,
          ...pairedRatio(cpuRatio, rounds),
          goal: ">= 0.95",
          met: cpuRatio.median >= 0.95,
        },
        {
          name: `no-op jobs/s (wall clock), project (info) vs raw BullMQ (${label}; ratio = project / raw per round)`,
          value: paired.spreadOf((round) => rate(round.subject)).median,
          unit: "jobs/s",
          baseline: paired.spreadOf((round) => rate(round.baseline)).median,
          ...pairedRatio(rateRatio, rounds),
          goal: ">= 0.90",
          met: rateRatio.median >= 0.9,
        },
        ...(WITH_WARN
          ? [
              {
                name: "same CPU per job, project at LOG_LEVEL=warn (informational)",
                value: paired.spreadOf((round) => cpuPerJob(quiet(round))).median,
                unit: "µs/job",
                baseline: paired.spreadOf((round) => cpuPerJob(round.baseline)).median,
                ...pairedRatio(paired.others["project at warn"] ?? cpuRatio, rounds),
              },
            ]
          : []),
      ];
    } finally {
      connection.disconnect();
    }
  },
};
