import type { Job } from "bullmq";
import { createCacheInvalidator } from "../cache/invalidator.js";
import { completedRow, failedRow, isFinalFailure } from "../history/history-row.js";
import { HistoryWriter } from "../history/history-writer.js";
import type { ClosingWorker } from "../lib/closing-worker.js";
import { type Config, queueStoreOptions } from "../lib/config.js";
import { createDb, type Db, sessionPool } from "../lib/db.js";
import type { Logger } from "../lib/logger.js";
import { flushMetrics } from "../lib/metrics.js";
import { refuseQueueStoreBehindPooler, warnIfSessionsPooled } from "../lib/pooler-check.js";
import { type AnyWorker, createQueueStore } from "../lib/queue-store.js";
import { warnUnlessNoEviction } from "../lib/redis.js";
import type { QueueContract } from "./contract.js";
import { getContract } from "./contracts.js";
import { type ControlListener, type ControlMessage, startControlListener } from "./control-channel.js";
import { handlers } from "./handlers.js";
import type { JobHandler, WorkerServices } from "./job-context.js";
import { toJobFailure } from "./job-failure.js";
import { JobStopControl } from "./job-stop-control.js";
import { readQueueConcurrency } from "./queue-settings.js";
import { isSchedulePaused } from "./schedule-controls.js";
import { validatePayload } from "./validate-payload.js";
import { waitingJobs } from "./waiting-jobs.js";
import { WorkerCounters } from "./worker-counters.js";
import { type SharedContext, WorkerJobContext } from "./worker-job-context.js";
import { workerServices } from "./worker-services.js";

/** Jobs at least this long get their own "job completed" line at info. */
const SLOW_JOB_LOG_SECONDS = 1;

/**
 * BullMQ 6.7 reads a raised concurrency only when its main loop next wakes,
 * which is when one of the running jobs ends: a worker whose slots all hold
 * long jobs would not start more until then. Settling an empty entry in its
 * loop's queue wakes it now; with nothing to process, the loop then fetches
 * up to the new concurrency. (Lowering needs nothing: a finishing job does
 * not fetch another while the worker is over its concurrency.)
 */
function wakeMainLoop(worker: AnyWorker): void {
  const loopQueue = (worker as unknown as { mainLoopQueue?: { add(promise: Promise<undefined>): void } | null }).mainLoopQueue;
  if (typeof loopQueue?.add === "function") loopQueue.add(Promise.resolve(undefined));
}

/** The job's own deadlineMs (an enqueue option), else its queue's. */
function deadlineOf(job: Job, contract: QueueContract): number | undefined {
  const own = (job.opts as { deadlineMs?: unknown }).deadlineMs;
  return typeof own === "number" && own > 0 ? own : contract.worker.deadlineMs;
}

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
  /** Outside dependencies for the handlers (a test's fake provider, a moved clock); the rest come from the config. */
  services?: Partial<WorkerServices>;
  /**
   * Internal, for embedding and benchmarks: run this contract and handler on
   * queue `queueName` instead of a declared queue. The Procfile and CLI never
   * set it, so they only run the declared queues.
   */
  job?: { contract: QueueContract; handler: JobHandler<QueueContract> };
}

export interface RunningWorker {
  worker: ClosingWorker;
  db: Db;
  /** Applies a concurrency at once (what a `scale` control message does). */
  setConcurrency(concurrency: number): void;
  /** Stops taking jobs, waits for in-flight ones, then closes connections. */
  close(force?: boolean): Promise<void>;
}

/** One queue per process: the function behind every `worker-<queue>` Procfile line. */
export async function startWorker(queueName: string, options: StartWorkerOptions): Promise<RunningWorker> {
  const contract: QueueContract = options.job?.contract ?? getContract(queueName);
  const handle = (options.job?.handler ?? handlers[getContract(queueName).name]) as JobHandler<QueueContract>;
  const entry = { name: queueName };
  const { config } = options;
  const prefix = options.prefix ?? config.QUEUE_PREFIX;
  const logger = options.logger.child({ queue: entry.name });
  const db =
    options.db ??
    createDb({
      url: config.DATABASE_URL,
      directUrl: config.DIRECT_DATABASE_URL,
      poolSize: config.DB_POOL_SIZE,
      connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
      slowQueryMs: config.SLOW_QUERY_MS,
      logger,
      applicationName: `dbjobs:${entry.name}`,
    });
  // In the background: a start-up must not wait on it, and an unreachable database is reported elsewhere.
  void warnIfSessionsPooled(sessionPool(db), config.DIRECT_DATABASE_URL !== undefined, logger);
  // An operator's `dbjobs scale` outlives restarts: the stored value wins over the configured ones.
  const scaled = await readQueueConcurrency(db.pool, entry.name).catch((err: unknown) => {
    logger.warn({ err }, "could not read the queue's stored concurrency (run `dbjobs migrate`?); using the configured one");
    return undefined;
  });
  const concurrency = scaled ?? options.concurrency ?? config.WORKER_CONCURRENCY ?? contract.worker.concurrency;
  const store = createQueueStore({
    ...queueStoreOptions(config),
    prefix,
    role: "worker",
    // BullMQ's claims, lock renewals and finishes, plus its LISTEN connection and our metrics flush.
    poolSize: concurrency + 4,
    applicationName: `dbjobs:${entry.name}`,
    logger,
  });
  // A store PgBouncer refuses would have BullMQ's worker retry at once, forever: fail the start instead, naming the setting.
  await refuseQueueStoreBehindPooler(store, config.QUEUE_CONNECT_TIMEOUT_MS).catch(async (err: unknown) => {
    await store.close();
    if (!options.db) await db.close();
    throw err;
  });
  const services = workerServices(config, options.services, store);
  if (store.redis) await warnUnlessNoEviction(store.redis, logger);
  const invalidator = createCacheInvalidator({ config, prefix, redis: store.redis, db, logger });

  const debugEnabled = logger.isLevelEnabled("debug");
  const schedulePaused = (scheduleId: string) =>
    isSchedulePaused(db.pool, scheduleId).catch((err: unknown) => {
      // Without the table (no `dbjobs migrate` yet) nothing can be paused; run the fire.
      logger.warn({ err, schedule: scheduleId }, "could not read whether the schedule is paused; running the fire");
      return false;
    });
  const waiting = waitingJobs(store, entry.name);
  const shared: SharedContext = { logger, db, redis: store.redis, config, prefix, services, invalidator, waitingJobs: () => waiting.count() };
  // The stop switches of the jobs running here, by job id, for an operator's cancel. Two parameters, not
  // BullMQ's three: with a third it makes an AbortController per job for its cancelJob, which we do not use.
  const running = new Map<string, JobStopControl>();
  const processor = async (job: Job, token?: string) => {
    let payload: unknown;
    try {
      // A bad payload fails at once (PayloadValidationError is not retryable), with the producer's message.
      payload = validatePayload(entry.name, contract.payload, job.data);
    } catch (err) {
      throw toJobFailure(err);
    }
    // A fire of a paused schedule completes without running (BullMQ names the scheduler in repeatJobKey).
    if (job.repeatJobKey && (await schedulePaused(job.repeatJobKey))) {
      logger.info({ jobId: job.id, schedule: job.repeatJobKey }, "schedule paused: fire skipped");
      return { skipped: `schedule ${job.repeatJobKey} is paused` };
    }
    const stop = new JobStopControl(deadlineOf(job, contract));
    const context = new WorkerJobContext(job, shared, stop, token);
    stop.onStop(() => {
      context.cancelDatabaseWork().catch((err: unknown) => context.log.warn({ err }, "could not cancel the job's statements"));
    });
    if (debugEnabled) context.log.debug({ attempt: job.attemptsMade + 1 }, "job started");
    const jobId = job.id as string;
    running.set(jobId, stop);
    try {
      return await handle(payload, context);
    } catch (err) {
      // Whatever the handler threw on the way out (57014, an AbortError), a stopped job fails for its stop.
      throw toJobFailure(stop.stopped ? stop.failure(context.lastProgress) : err);
    } finally {
      running.delete(jobId);
      stop.dispose();
    }
  };

  const worker = await store.worker(entry.name, processor, {
    concurrency,
    lockDuration: contract.worker.lockDurationMs ?? 30_000,
    autorun: true,
  });

  // Finished jobs go to dbjobs.job_history in batches (history-writer.ts says what a crash can lose).
  const history = config.HISTORY_ENABLED
    ? new HistoryWriter({ pool: db.pool, logger, flushMs: config.HISTORY_FLUSH_MS, batchSize: config.HISTORY_BATCH_SIZE })
    : undefined;
  const redact = contract.history?.redact ?? [];
  const onControl = (message: ControlMessage) => {
    if (message.queue !== entry.name) return;
    if (message.type === "cancel") {
      const stop = running.get(message.jobId);
      if (stop) {
        stop.cancel(message.reason);
        logger.info({ jobId: message.jobId, reason: message.reason }, "job cancelled by an operator");
      }
    } else if (message.type === "scale") {
      setConcurrency(message.concurrency);
    }
  };
  const setConcurrency = (next: number) => {
    if (next === worker.concurrency) return;
    // The PostgreSQL store's pool grows with it: BullMQ claims and finishes a job on a pooled connection.
    if (store.pool) store.pool.options.max = Math.max(store.pool.options.max, next + 4);
    logger.info({ from: worker.concurrency, to: next }, "concurrency changed");
    const raised = next > worker.concurrency;
    worker.concurrency = next;
    if (raised) wakeMainLoop(worker);
  };
  let control: ControlListener | undefined;
  try {
    control = startControlListener({ store, config, logger, onMessage: onControl });
  } catch (err) {
    logger.warn({ err }, "no control channel: cancel and scale will not reach this worker");
  }

  const counters = new WorkerCounters(entry.name);
  const metricsStore = store.metrics();
  // The per-job "job completed" line carries only jobId and durationMs, so it
  // skips the redaction paths (half its cost, which matters for short jobs);
  // URL credentials are still scrubbed by the logger's stream.
  const completionLog = logger.child({}, { redact: [] });
  const flush = () => {
    const counted = counters.moveToPending();
    if (counted.completed + counted.failed + counted.stalled > 0) logger.info(counted, "jobs since the last report");
    return flushMetrics(metricsStore);
  };

  // ── Listeners below must never throw: an exception here would stop the worker. ──
  worker.on("completed", (job, result) => {
    try {
      history?.add(completedRow(entry.name, job, result, redact));
      const seconds = ((job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now())) / 1000;
      counters.jobCompleted(seconds);
      // A line per short job would cost more than the job itself (see the no-op
      // bench); those are at debug and summed up at info at every flush.
      if (seconds >= SLOW_JOB_LOG_SECONDS) completionLog.info({ jobId: job.id, durationMs: Math.round(seconds * 1000) }, "job completed");
      else if (debugEnabled) completionLog.debug({ jobId: job.id, durationMs: Math.round(seconds * 1000) }, "job completed");
    } catch {}
  });
  worker.on("failed", (job, err) => {
    try {
      counters.jobFailed();
      if (history && job && isFinalFailure(job, err)) history.add(failedRow(entry.name, job, err, redact));
      logger.warn({ jobId: job?.id, attemptsMade: job?.attemptsMade, err }, "job failed");
    } catch {}
  });
  worker.on("stalled", (jobId) => {
    try {
      counters.jobStalled();
      logger.warn({ jobId }, "job stalled; it will be retried");
    } catch {}
  });
  worker.on("error", (err) => {
    try {
      logger.error({ err }, "worker error");
    } catch {}
  });

  const flushTimer = setInterval(() => {
    flush().catch((err: unknown) => logger.debug({ err }, "metrics flush failed; will retry"));
  }, options.metricsFlushMs ?? 5000);
  flushTimer.unref();

  // Not forever: a worker whose control channel is slow to connect still works, and the listener keeps trying.
  // The worker's own readiness too: on PostgreSQL it names its LISTEN connection then, which is what lists it as the queue's worker (/health).
  const ready = [worker.waitUntilReady().catch(() => undefined), ...(control ? [control.ready] : [])];
  await Promise.race([Promise.all(ready), new Promise((resolve) => setTimeout(resolve, config.QUEUE_CONNECT_TIMEOUT_MS).unref())]);
  logger.info({ concurrency: worker.concurrency, backend: store.kind, ...(store.kind === "redis" ? { prefix } : {}) }, "worker started");

  let closing: Promise<void> | undefined;
  return {
    worker,
    db,
    setConcurrency,
    close(force = false) {
      closing ??= (async () => {
        clearInterval(flushTimer);
        // Stop taking jobs first, at once; the drain below waits for the ones in flight.
        const drained = worker.close(force);
        drained.catch(() => undefined); // awaited below; this keeps a failure meanwhile from counting as unhandled
        await worker.whenClaimsSettled();
        logger.info("stopped taking jobs; waiting for the jobs in flight");
        await control?.close();
        await drained;
        await history?.close();
        await flush().catch(() => undefined);
        await invalidator.close();
        await waiting.close();
        await store.close();
        if (!options.db) await db.close();
      })();
      return closing;
    },
  };
}
