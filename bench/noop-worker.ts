import { type Job, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { z } from "zod";
import { loadConfig } from "../src/lib/config.js";
import { createLogger } from "../src/lib/logger.js";
import { defineJob } from "../src/queues/job-definition.js";
import { defaultJobOptions } from "../src/queues/registry.js";
import { startWorker } from "../src/queues/start-worker.js";
import type { BenchRow, BenchSection } from "./bench-section.js";
import { benchPostgresAdminUrl, benchPrefix, benchRedisUrl } from "./support.js";

/**
 * No-op jobs per second through the project's worker runtime (startWorker:
 * payload validation, job context, child logger, progress/metrics hooks, the
 * per-job "job completed" log line at the default level info, written to
 * /dev/null) against a raw BullMQ Worker with an empty processor. Same Redis,
 * same concurrency, same job options, same number of jobs added the same way
 * before the worker starts; rounds alternate so drift on a shared machine hits
 * both alike, and each side keeps its best round.
 */
const JOBS = Number(process.env.BENCH_NOOP_JOBS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_NOOP_ROUNDS ?? 3);
const CONCURRENCY = 8;
const QUEUE = "bench-noop";

const noopJob = defineJob({
  queue: QUEUE,
  payloadSchema: z.object({ n: z.number().int() }).strict(),
  handle: async () => undefined,
});

// The registry's retention options, so both sides do the same Redis work per job.
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

async function rawRound(connection: Redis): Promise<number> {
  const prefix = benchPrefix();
  await fill(connection, prefix);
  const workerConnection = new Redis(benchRedisUrl, { maxRetriesPerRequest: null });
  const worker = new Worker(QUEUE, async (_job: Job) => undefined, { connection: workerConnection, prefix, concurrency: CONCURRENCY, autorun: false });
  const elapsed = timeUntilDone(worker);
  void worker.run();
  const ms = await elapsed;
  await worker.close();
  workerConnection.disconnect();
  await obliterate(connection, prefix);
  return ms;
}

async function projectRound(connection: Redis): Promise<number> {
  const prefix = benchPrefix();
  await fill(connection, prefix);
  const config = loadConfig({ REDIS_URL: benchRedisUrl, DATABASE_URL: benchPostgresAdminUrl, QUEUE_PREFIX: prefix, LOG_LEVEL: "info" });
  const logger = createLogger({ level: "info" }, pino.destination({ dest: "/dev/null", sync: false }));
  // startWorker starts its worker at once; the clock starts when it returns.
  const running = await startWorker(QUEUE, { config, logger, concurrency: CONCURRENCY, job: { definition: noopJob, settings: { concurrency: CONCURRENCY } } });
  const ms = await timeUntilDone(running.worker);
  await running.close();
  await obliterate(connection, prefix);
  return ms;
}

export const noopWorkerBench: BenchSection = {
  name: "noop-worker",
  async run(): Promise<BenchRow[]> {
    const connection = new Redis(benchRedisUrl, { maxRetriesPerRequest: null });
    try {
      const raw: number[] = [];
      const project: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        raw.push(await rawRound(connection));
        project.push(await projectRound(connection));
      }
      const rawRate = JOBS / (Math.min(...raw) / 1000);
      const projectRate = JOBS / (Math.min(...project) / 1000);
      const ratio = projectRate / rawRate;
      return [
        {
          name: `no-op jobs/s, project worker vs raw BullMQ (${JOBS} jobs, concurrency ${CONCURRENCY}, best of ${ROUNDS})`,
          value: projectRate,
          unit: "jobs/s",
          baseline: rawRate,
          ratio,
          goal: ">= 0.90",
          met: ratio >= 0.9,
        },
      ];
    } finally {
      connection.disconnect();
    }
  },
};
