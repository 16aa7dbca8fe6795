import type { Job } from "bullmq";
import type { SharedCacheTier } from "../cache/invalidator.js";
import type { Config } from "../lib/config.js";
import type { Db } from "../lib/db.js";
import type { Logger } from "../lib/logger.js";
import type { RedisConnection } from "../lib/redis.js";
import type { PayloadOf, QueueContract, ResultOf } from "./contract.js";

/**
 * What a handler gets besides its payload. Outside dependencies (the
 * messaging provider, the clock) arrive here, set when the worker starts, so
 * a test hands a job a fake provider without touching module state.
 */
export interface JobContext {
  job: Job;
  /** Child logger carrying `{ queue, jobId }`. */
  log: Logger;
  /**
   * The database. Connections taken from `db.pool` (withSession, pool.query)
   * are this job's: a cancel or a deadline cancels their running statement.
   */
  db: Db;
  /**
   * Aborted when an operator cancels the job or its deadline passes; the
   * reason is a JobCancelledError or JobDeadlineError (job-stop.ts). Pass it
   * to outside calls (fetch) and check it between steps that do not go
   * through `db.pool` (Prisma queries, loops in JavaScript).
   */
  signal: AbortSignal;
  /**
   * The process's pool, not tied to `signal`: only for cleaning up after a
   * stop (e.g. dropping the invalid index a cancelled REINDEX CONCURRENTLY
   * leaves). @defaultValue db.pool
   */
  cleanupPool?: import("pg").Pool;
  /** The worker's Redis connection when the queues live in Redis (blocking-safe: `maxRetriesPerRequest: null`). */
  redis: RedisConnection | undefined;
  config: Config;
  /** BullMQ key prefix of this process. */
  prefix: string;
  /** Outside services, created from the config unless the worker was started with its own. */
  services: WorkerServices;
  /** The cache's shared tier (Redis, when REDIS_URL is set), for jobs that write to it; unset when there is none. */
  sharedCache?: SharedCacheTier;
  /** Removes keys from the shared cache tier and from every process's in-memory tier. */
  invalidateCache(keys: string[]): Promise<void>;
  /** Reports progress to BullMQ; never throws (a lost progress update must not fail the job). */
  reportProgress(progress: number | object): Promise<void>;
  /**
   * Puts the job back in its queue and ends this run without spending an
   * attempt: it never resolves, it throws BullMQ's DelayedError, which the
   * handler must let through. The job is neither failed nor completed (no
   * history row, no "job failed" line), a cancel removes it like any job not
   * running, and its next run gets the same payload, so the handler saves
   * where it got to (e.g. in its progress) before it calls this.
   * `delayMs` 0 puts it at the back of the waiting line now; more keeps it
   * out of every worker's way that long.
   */
  postpone(delayMs: number): Promise<never>;
  /** Jobs of this queue waiting for a worker (not delayed, not running): whether giving up this job's slot would let another run. */
  waitingJobs(): Promise<number>;
}

/** Outside dependencies of the handlers; each is built lazily on first use. */
export interface WorkerServices {
  /** The current time; tests move it. */
  now(): Date;
  /** The SMS/email provider bulk-messaging sends through. */
  messaging(log: Logger): import("../jobs/bulk-messaging/provider.js").MessagingProvider;
  /** The provider rate limit every bulk-messaging worker shares (MESSAGING_RATE_PER_SECOND); undefined without one. */
  messagingRateLimit(): import("../jobs/bulk-messaging/provider-rate-limit.js").ProviderRateLimit | undefined;
}

export type JobHandler<C extends QueueContract> = (payload: PayloadOf<C>, context: JobContext) => Promise<ResultOf<C>>;
