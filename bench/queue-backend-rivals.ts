import { Logger, makeWorkerUtils, run, runMigrations } from "graphile-worker";
import PgBoss from "pg-boss";
import { type BackendSide, CONCURRENCY, copyOfSource, type NoopData, type OpenSide, QUEUE } from "./queue-backend-side.js";

/**
 * The two PostgreSQL job queues dbjobs is compared with, each at the
 * settings its own documentation gives for throughput, with the same
 * concurrency as the BullMQ sides. Their schemas are installed once in the
 * source database (installRivals), so a round pays for no migration.
 */

/**
 * pg-boss jobs fetched per poll by each of its workers. Its docs give no
 * figure; its throughput here is bounded by workers × batchSize per polling
 * interval (8 × 100 / 0.5 s = 1,600 jobs/s), so it scales with this setting.
 */
const PG_BOSS_BATCH = Number(process.env.BENCH_PGBOSS_BATCH ?? 100);
/** pg-boss 10's lowest polling interval (it asserts ≥ 0.5 s). */
const PG_BOSS_POLL_SECONDS = 0.5;
/** graphile-worker's documented high-throughput batch (worker.graphile.org/docs/performance). */
const GRAPHILE_LOCAL_QUEUE = 500;
const BULK = 1000;

/** pg-boss's own background work off: no cron, no maintenance or monitoring loops inside the measured seconds. */
const pgBossQuiet = { schedule: false, supervise: false } as const;

/** Installs pg-boss's and graphile-worker's schemas (and pg-boss's queue) in the source database. */
export async function installRivals(url: string): Promise<void> {
  const boss = new PgBoss({ connectionString: url, max: 2, ...pgBossQuiet });
  boss.on("error", () => undefined);
  await boss.start();
  await boss.createQueue(QUEUE);
  await boss.stop({ graceful: false, close: true, wait: true });
  await runMigrations({ connectionString: url, logger: silentLogger });
}

/** graphile-worker's logger, silenced: the dbjobs sides log to /dev/null at info, which costs them more. */
const silentLogger = new Logger(() => () => undefined);

/**
 * pg-boss 10 has no per-worker concurrency (teamSize went in v10): each
 * work() call adds one polling worker that fetches up to batchSize jobs and
 * hands them to the handler as an array. So concurrency 8 is eight work()
 * calls, the handler runs its batch's jobs together, and pollingIntervalSeconds
 * is the 0.5 s minimum. pg-boss 10 polls: it has no LISTEN/NOTIFY wake-up.
 */
export const pgBoss: BackendSide = {
  name: "pg-boss 10",
  settings: `${CONCURRENCY} workers (work() called ${CONCURRENCY} times; v10 has no teamSize), batchSize ${PG_BOSS_BATCH} (BENCH_PGBOSS_BATCH), pollingIntervalSeconds ${PG_BOSS_POLL_SECONDS} (the lowest v10 accepts; v10 polls, with no LISTEN/NOTIFY), pool max ${CONCURRENCY + 2}, queue policy standard, schedule and supervise off; bulk fill with insert(), single adds with send()`,
  async open(source) {
    const copy = await copyOfSource(source, "pgboss");
    const boss = new PgBoss({ connectionString: copy.url, max: CONCURRENCY + 2, migrate: false, ...pgBossQuiet });
    boss.on("error", () => undefined);
    try {
      await boss.start();
    } catch (err) {
      await copy.drop();
      throw err;
    }
    return {
      async fill(count) {
        for (let start = 0; start < count; start += BULK) {
          await boss.insert(Array.from({ length: Math.min(BULK, count - start) }, (_, i) => ({ name: QUEUE, data: { n: start + i, t: 0 } })));
        }
      },
      async startWorker(onJob) {
        for (let worker = 0; worker < CONCURRENCY; worker++) {
          await boss.work<NoopData>(QUEUE, { batchSize: PG_BOSS_BATCH, pollingIntervalSeconds: PG_BOSS_POLL_SECONDS }, async (jobs) => {
            for (const job of jobs) onJob(job.data);
          });
        }
      },
      async add(data) {
        await boss.send(QUEUE, data);
      },
      async close() {
        try {
          await boss.stop({ graceful: true, close: true, wait: true, timeout: 10_000 });
        } finally {
          await copy.drop();
        }
      },
    } satisfies OpenSide;
  },
};

/**
 * graphile-worker 0.17 at the settings of its performance page: a local
 * queue that fetches jobs in batches, job completions batched
 * (completeJobBatchDelay 0), a pool of max(10, concurrency + 2); new jobs
 * wake it through LISTEN/NOTIFY, pollInterval (2 s) only matters for future jobs.
 */
export const graphileWorker: BackendSide = {
  name: "graphile-worker 0.17",
  settings: `run() with concurrency ${CONCURRENCY}, maxPoolSize ${Math.max(10, CONCURRENCY + 2)}, preset.worker.localQueue.size ${GRAPHILE_LOCAL_QUEUE}, completeJobBatchDelay 0, failJobBatchDelay 0 (its performance page's settings), pollInterval 2000 (default; new jobs arrive by LISTEN/NOTIFY), logger silenced; bulk fill with addJobs(), single adds with addJob()`,
  async open(source) {
    const copy = await copyOfSource(source, "graphile");
    let utils: Awaited<ReturnType<typeof makeWorkerUtils>> | undefined;
    let runner: Awaited<ReturnType<typeof run>> | undefined;
    try {
      utils = await makeWorkerUtils({ connectionString: copy.url, logger: silentLogger });
    } catch (err) {
      await copy.drop();
      throw err;
    }
    const opened = utils;
    return {
      async fill(count) {
        for (let start = 0; start < count; start += BULK) {
          await opened.addJobs(Array.from({ length: Math.min(BULK, count - start) }, (_, i) => ({ identifier: QUEUE, payload: { n: start + i, t: 0 } })));
        }
      },
      async startWorker(onJob) {
        runner = await run({
          connectionString: copy.url,
          concurrency: CONCURRENCY,
          maxPoolSize: Math.max(10, CONCURRENCY + 2),
          noHandleSignals: true,
          logger: silentLogger,
          taskList: {
            [QUEUE]: async (payload) => {
              onJob(payload as NoopData);
            },
          },
          preset: { worker: { localQueue: { size: GRAPHILE_LOCAL_QUEUE }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
        });
      },
      async add(data) {
        await opened.addJob(QUEUE, data);
      },
      async close() {
        try {
          await runner?.stop();
          await opened.release();
        } finally {
          await copy.drop();
        }
      },
    } satisfies OpenSide;
  },
};
