import { createPostgresBackend, type Job, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { z } from "zod";
import { loadConfig, queueStoreOptions } from "../src/lib/config.js";
import { createLogger } from "../src/lib/logger.js";
import { type AnyQueue, type AnyWorker, createQueueStore } from "../src/lib/queue-store.js";
import { defaultJobOptions, defineContract } from "../src/queues/contract.js";
import { startWorker } from "../src/queues/start-worker.js";
import { benchRun } from "./bench-run.js";
import { type BackendSide, CONCURRENCY, copyOfSource, type NoopData, type OpenSide, QUEUE } from "./queue-backend-side.js";
import { benchPrefix, benchRedisUrl } from "./support.js";

/**
 * The three BullMQ sides of the queue-backend bench: raw BullMQ on its
 * PostgreSQL backend (the baseline), and dbjobs' worker runtime (startWorker)
 * on PostgreSQL and on Redis. All three add jobs with the contracts'
 * retention options, so each does the same store work per job.
 */
const jobOptions = { removeOnComplete: defaultJobOptions.removeOnComplete, removeOnFail: defaultJobOptions.removeOnFail };
const BULK = 1000;

const noopContract = defineContract<undefined>()({
  name: QUEUE,
  payload: z.object({ n: z.number().int(), t: z.number() }).strict(),
  worker: { concurrency: CONCURRENCY },
  jobOptions,
});

async function fillQueue(queue: Pick<AnyQueue, "addBulk">, count: number): Promise<void> {
  for (let start = 0; start < count; start += BULK) {
    await queue.addBulk(Array.from({ length: Math.min(BULK, count - start) }, (_, i) => ({ name: QUEUE, data: { n: start + i, t: 0 }, opts: jobOptions })));
  }
}

/**
 * BullMQ's PostgreSQL guide, as written: `createPostgresBackend` with a pool
 * config that BullMQ owns (so its LISTEN connection is a dedicated one
 * outside the pool), `max` sized for the worker's concurrency, migrations run
 * once beforehand (here in the source database), retention by
 * removeOnComplete/removeOnFail.
 */
export const rawBullmqPostgres: BackendSide = {
  name: "raw BullMQ on PostgreSQL",
  settings: `Worker and Queue built with createPostgresBackend and a pool config BullMQ owns ({ connectionString, max: ${CONCURRENCY + 2} }: the concurrency plus two, its LISTEN connection being separate); concurrency ${CONCURRENCY}; schema bullmq migrated beforehand with runMigrations; removeOnComplete/removeOnFail as dbjobs' contracts set them; synchronous_commit left on`,
  async open(source) {
    const copy = await copyOfSource(source, "raw_pg");
    const connection = { connectionString: copy.url, max: CONCURRENCY + 2 };
    const queue = new Queue(QUEUE, { connection }, createPostgresBackend);
    let worker: AnyWorker | undefined;
    return {
      fill: (count) => fillQueue(queue, count),
      async startWorker(onJob) {
        worker = new Worker(QUEUE, async (job: Job<NoopData>) => onJob(job.data), { connection, concurrency: CONCURRENCY }, createPostgresBackend) as AnyWorker;
        worker.on("error", () => undefined);
      },
      async add(data) {
        await queue.add(QUEUE, data, jobOptions);
      },
      async close() {
        try {
          await worker?.close();
          await queue.close();
        } finally {
          await copy.drop();
        }
      },
    } satisfies OpenSide;
  },
};

/** As `dbjobs worker` logs: pino.destination (asynchronous SonicBoom), here to /dev/null, at the default level info. */
function devNullLogger() {
  return createLogger({ level: "info" }, pino.destination({ dest: "/dev/null", sync: false }));
}

/**
 * dbjobs on PostgreSQL: startWorker with QUEUE_BACKEND=postgres, as the
 * Procfile's worker lines run it (payload validation, job context, metrics
 * flush, logging at info), and the producer's queue store for the adds.
 */
export const dbjobsPostgres: BackendSide = {
  name: "dbjobs on PostgreSQL",
  settings: `startWorker with QUEUE_BACKEND=postgres and its defaults (one pg pool of concurrency + 4 holding the LISTEN connection too, metrics flushed every 5 s, LOG_LEVEL=info to /dev/null); adds through the queue store a Producer uses (pool of 4)`,
  async open(source) {
    const copy = await copyOfSource(source, "dbjobs_pg");
    const config = loadConfig({ QUEUE_BACKEND: "postgres", DATABASE_URL: copy.url, LOG_LEVEL: "info" });
    const store = createQueueStore({ ...queueStoreOptions(config), role: "producer", poolSize: 4, applicationName: "dbjobs:producer" });
    return dbjobsSide(config, await store.queue(QUEUE, { defaultJobOptions: jobOptions }), async () => {
      await store.close();
      await copy.drop();
    });
  },
};

/** dbjobs on Redis: the same runtime with QUEUE_BACKEND=redis, on a key prefix of this run. */
export const dbjobsRedis: BackendSide = {
  name: "dbjobs on Redis",
  settings:
    "startWorker with QUEUE_BACKEND=redis and its defaults (LOG_LEVEL=info to /dev/null), on the local Redis; adds through a BullMQ Queue on the same prefix",
  async open() {
    const prefix = benchPrefix();
    const connection = new Redis(benchRedisUrl, { maxRetriesPerRequest: null });
    // History off: this database is not migrated, so its flushes would only fail and retry (its cost is measured in history.ts).
    const config = loadConfig({
      QUEUE_BACKEND: "redis",
      REDIS_URL: benchRedisUrl,
      DATABASE_URL: benchRun.adminUrl,
      QUEUE_PREFIX: prefix,
      LOG_LEVEL: "info",
      HISTORY_ENABLED: "false",
    });
    const queue = new Queue(QUEUE, { connection, prefix }) as unknown as AnyQueue;
    return dbjobsSide(config, queue, async () => {
      await benchRun.removeKeys(prefix, connection);
      connection.disconnect();
    });
  },
};

function dbjobsSide(config: ReturnType<typeof loadConfig>, queue: AnyQueue, release: () => Promise<void>): OpenSide {
  let running: Awaited<ReturnType<typeof startWorker>> | undefined;
  return {
    fill: (count) => fillQueue(queue, count),
    async startWorker(onJob) {
      running = await startWorker(QUEUE, {
        config,
        logger: devNullLogger(),
        concurrency: CONCURRENCY,
        job: {
          contract: noopContract,
          handler: async (payload) => {
            onJob(payload as NoopData);
            return undefined;
          },
        },
      });
    },
    async add(data) {
      await queue.add(QUEUE, data, jobOptions);
    },
    async close() {
      try {
        await running?.close();
        await queue.close();
      } finally {
        await release();
      }
    },
  };
}
