import { type Job, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { invalidateCacheKeys } from "../lib/cache-invalidation.js";
import type { Config } from "../lib/config.js";
import { createDb, type Db } from "../lib/db.js";
import { PayloadValidationError } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import { flushMetrics, incrementCounter, observeHistogram } from "../lib/metrics.js";
import { createRedis, warnUnlessNoEviction } from "../lib/redis.js";
import type { JobContext } from "./job-definition.js";
import { getImplementedQueue } from "./registry.js";
import { validatePayload } from "./validate-payload.js";

export interface StartWorkerOptions {
  config: Config;
  logger: Logger;
  /** Reuse a database handle (tests, benchmarks); otherwise one is created and closed with the worker. */
  db?: Db;
  /** BullMQ key prefix. @defaultValue config.QUEUE_PREFIX */
  prefix?: string;
  /** @defaultValue the registry's concurrency, or config.WORKER_CONCURRENCY */
  concurrency?: number;
  /** How often counters are flushed to Redis for the dashboard. @defaultValue 5000 */
  metricsFlushMs?: number;
}

export interface RunningWorker {
  worker: Worker;
  db: Db;
  /** Stops taking jobs, waits for in-flight ones, then closes connections. */
  close(force?: boolean): Promise<void>;
}

/** One queue per process: the function behind every `worker-<queue>` Procfile line. */
export async function startWorker(queueName: string, options: StartWorkerOptions): Promise<RunningWorker> {
  const entry = getImplementedQueue(queueName);
  const { config } = options;
  const prefix = options.prefix ?? config.QUEUE_PREFIX;
  const logger = options.logger.child({ queue: entry.name });
  const db =
    options.db ??
    createDb({
      url: config.DATABASE_URL,
      poolSize: config.DB_POOL_SIZE,
      connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
      slowQueryMs: config.SLOW_QUERY_MS,
      logger,
      applicationName: `dbjobs:${entry.name}`,
    });
  const connection: Redis = createRedis(config.REDIS_URL, "worker", logger);
  await warnUnlessNoEviction(connection, logger);

  const processor = async (job: Job) => {
    const log = logger.child({ jobId: job.id });
    let payload: unknown;
    try {
      payload = validatePayload(entry.name, entry.job.payloadSchema, job.data);
    } catch (err) {
      // Retrying cannot fix a bad payload: fail now, with the producer's message.
      if (err instanceof PayloadValidationError) throw new UnrecoverableError(err.message);
      throw err;
    }
    const context: JobContext = {
      job,
      log,
      db,
      redis: connection,
      config,
      prefix,
      invalidateCache: (keys) => invalidateCacheKeys(connection, prefix, keys),
      reportProgress: async (progress) => {
        try {
          await job.updateProgress(progress);
        } catch (err) {
          log.warn({ err }, "could not report progress");
        }
      },
    };
    log.debug({ attempt: job.attemptsMade + 1 }, "job started");
    return entry.job.handle(payload, context);
  };

  const worker = new Worker(entry.name, processor, {
    connection,
    prefix,
    concurrency: options.concurrency ?? config.WORKER_CONCURRENCY ?? entry.settings.concurrency,
    lockDuration: entry.settings.lockDurationMs ?? 30_000,
    autorun: true,
  });

  // ── Listeners below must never throw: an exception here would stop the worker. ──
  worker.on("completed", (job) => {
    try {
      const seconds = ((job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now())) / 1000;
      observeHistogram("dbjobs_job_duration_seconds", { queue: entry.name }, seconds);
      incrementCounter("dbjobs_jobs_completed_total", { queue: entry.name });
      logger.info({ jobId: job.id, durationMs: Math.round(seconds * 1000) }, "job completed");
    } catch {}
  });
  worker.on("failed", (job, err) => {
    try {
      incrementCounter("dbjobs_jobs_failed_total", { queue: entry.name });
      logger.warn({ jobId: job?.id, attemptsMade: job?.attemptsMade, err }, "job failed");
    } catch {}
  });
  worker.on("stalled", (jobId) => {
    try {
      incrementCounter("dbjobs_jobs_stalled_total", { queue: entry.name });
      logger.warn({ jobId }, "job stalled; it will be retried");
    } catch {}
  });
  worker.on("error", (err) => {
    try {
      logger.error({ err }, "worker error");
    } catch {}
  });

  const flushTimer = setInterval(() => {
    flushMetrics(connection, prefix).catch((err: unknown) => logger.debug({ err }, "metrics flush failed; will retry"));
  }, options.metricsFlushMs ?? 5000);
  flushTimer.unref();

  logger.info({ concurrency: worker.concurrency, prefix }, "worker started");

  let closing: Promise<void> | undefined;
  return {
    worker,
    db,
    close(force = false) {
      closing ??= (async () => {
        clearInterval(flushTimer);
        await worker.close(force);
        await flushMetrics(connection, prefix).catch(() => undefined);
        connection.disconnect();
        if (!options.db) await db.close();
      })();
      return closing;
    },
  };
}
