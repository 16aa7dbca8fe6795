import { type Job, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { z } from "zod";
import { loadConfig } from "../src/lib/config.js";
import { createLogger } from "../src/lib/logger.js";
import { defaultJobOptions, defineContract } from "../src/queues/contract.js";
import { startWorker } from "../src/queues/start-worker.js";
import type { BenchRow, BenchSection } from "./bench-section.js";
import { benchPostgresAdminUrl, benchPrefix, benchRedisUrl, median } from "./support.js";

/**
 * No-op jobs per second through the project's worker runtime (startWorker:
 * payload validation, job context, child logger, progress/metrics hooks and
 * logging at the default level info, written to /dev/null; short jobs log
 * their "job completed" line at debug) against a raw BullMQ Worker with an empty processor. Same Redis,
 * same concurrency, same job options, same number of jobs added the same way
 * before the worker starts; rounds rotate so drift on a shared machine hits
 * every side alike, and each side reports its median round. The same runtime
 * at LOG_LEVEL=warn (no per-flush summary line either) and CPU per job are
 * reported too.
 */
const JOBS = Number(process.env.BENCH_NOOP_JOBS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_NOOP_ROUNDS ?? 7);
const CONCURRENCY = 8;
const QUEUE = "bench-noop";

const noopContract = defineContract<undefined>()({
  name: QUEUE,
  payload: z.object({ n: z.number().int() }).strict(),
  worker: { concurrency: CONCURRENCY },
});
const noopHandler = async () => undefined;

// The contracts' retention options, so both sides do the same Redis work per job.
const jobOptions = { removeOnComplete: defaultJobOptions.removeOnComplete, removeOnFail: defaultJobOptions.removeOnFail };

async function fill(connection: Redis, prefix: string): Promise<void> {
  const queue = new Queue(QUEUE, { connection, prefix });
  for (let start = 0; start < JOBS; start += 1000) {
    await queue.addBulk(Array.from({ length: Math.min(1000, JOBS - start) }, (_, i) => ({ name: QUEUE, data: { n: start + i }, opts: jobOptions })));
  }
  await queue.close();
}

async function obliterate(connection: Redis, prefix: string): Promise<void> {
  const queue = new Queue(QUEUE, { connection, prefix });
  await queue.obliterate({ force: true });
  await queue.close();
}

/** Resolves with elapsed ms once `worker` has completed JOBS jobs, timed from `worker.run`-ready. */
function timeUntilDone(worker: Worker): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let done = 0;
    worker.on("completed", () => {
      done += 1;
      if (done === JOBS) resolve(performance.now() - start);
    });
    worker.on("failed", (_job, err) => reject(err));
  });
}

interface Round {
  ms: number;
  /** CPU this process spent while the worker ran (user + system), in µs. */
  cpuUs: number;
}

async function measured(worker: Worker): Promise<Round> {
  const cpuBefore = process.cpuUsage();
  const ms = await timeUntilDone(worker);
  const cpu = process.cpuUsage(cpuBefore);
  return { ms, cpuUs: cpu.user + cpu.system };
}

async function rawRound(connection: Redis): Promise<Round> {
  const prefix = benchPrefix();
  await fill(connection, prefix);
  const workerConnection = new Redis(benchRedisUrl, { maxRetriesPerRequest: null });
  const worker = new Worker(QUEUE, async (_job: Job) => undefined, { connection: workerConnection, prefix, concurrency: CONCURRENCY, autorun: false });
  const elapsed = measured(worker);
  void worker.run();
  const round = await elapsed;
  await worker.close();
  workerConnection.disconnect();
  await obliterate(connection, prefix);
  return round;
}

async function projectRound(connection: Redis, level: "info" | "warn"): Promise<Round> {
  const prefix = benchPrefix();
  await fill(connection, prefix);
  const config = loadConfig({ REDIS_URL: benchRedisUrl, DATABASE_URL: benchPostgresAdminUrl, QUEUE_PREFIX: prefix, LOG_LEVEL: "info" });
  // As `dbjobs worker` logs: pino.destination (asynchronous SonicBoom), here to /dev/null.
  const logger = createLogger({ level }, pino.destination({ dest: "/dev/null", sync: false }));
  // startWorker starts its worker at once; the clock starts when it returns.
  const running = await startWorker(QUEUE, { config, logger, concurrency: CONCURRENCY, job: { contract: noopContract, handler: noopHandler } });
  const round = await measured(running.worker);
  await running.close();
  await obliterate(connection, prefix);
  return round;
}

export const noopWorkerBench: BenchSection = {
  name: "noop-worker",
  async run(): Promise<BenchRow[]> {
    const connection = new Redis(benchRedisUrl, { maxRetriesPerRequest: null });
    try {
      const raw: Round[] = [];
      const project: Round[] = [];
      const quiet: Round[] = [];
      // Rotate which side goes first, so none always follows another's cleanup.
      const sides = [
        () => rawRound(connection).then((round) => raw.push(round)),
        () => projectRound(connection, "info").then((round) => project.push(round)),
        () => projectRound(connection, "warn").then((round) => quiet.push(round)),
      ];
      for (let round = 0; round < ROUNDS; round++) {
        for (let index = 0; index < sides.length; index++) await sides[(round + index) % sides.length]?.();
      }
      const show = (rounds: Round[]) => rounds.map((round) => `${Math.round(round.ms)} ms/${Math.round(round.cpuUs / 1000)} ms cpu`).join(", ");
      process.stderr.write(`noop-worker rounds: raw ${show(raw)}; project ${show(project)}; project at warn ${show(quiet)}\n`);
      // Medians: on a shared machine a single round can be far off either way.
      const rate = (rounds: Round[]) => JOBS / (median(rounds.map((round) => round.ms)) / 1000);
      // CPU per job varies far less with the machine's load than wall time does.
      const cpuPerJob = (rounds: Round[]) => median(rounds.map((round) => round.cpuUs)) / JOBS;
      const rawRate = rate(raw);
      const projectRate = rate(project);
      const ratio = projectRate / rawRate;
      const rawCpuPerJob = cpuPerJob(raw);
      const projectCpuPerJob = cpuPerJob(project);
      return [
        {
          name: `no-op jobs/s, project worker vs raw BullMQ (${JOBS} jobs, concurrency ${CONCURRENCY}, median of ${ROUNDS})`,
          value: projectRate,
          unit: "jobs/s",
          baseline: rawRate,
          ratio,
          goal: ">= 0.90",
          met: ratio >= 0.9,
        },
        {
          name: "same, LOG_LEVEL=warn (informational)",
          value: rate(quiet),
          unit: "jobs/s",
          baseline: rawRate,
          ratio: rate(quiet) / rawRate,
        },
        {
          name: "no-op job: worker process CPU per job, project (info) vs raw BullMQ (median round; ratio = raw / project, informational)",
          value: projectCpuPerJob,
          unit: "µs/job",
          baseline: rawCpuPerJob,
          ratio: rawCpuPerJob / projectCpuPerJob,
        },
        {
          name: "same, LOG_LEVEL=warn (informational)",
          value: cpuPerJob(quiet),
          unit: "µs/job",
          baseline: rawCpuPerJob,
          ratio: rawCpuPerJob / cpuPerJob(quiet),
        },
      ];
    } finally {
      connection.disconnect();
    }
  },
};
