import { DelayedError, type Job } from "bullmq";
import type { CacheInvalidator } from "../cache/invalidator.js";
import { type BackendTrackingPool, cancelBackends, trackBackends } from "../lib/backend-tracking-pool.js";
import type { Config } from "../lib/config.js";
import { type Db, sessionPool } from "../lib/db.js";
import type { Logger } from "../lib/logger.js";
import type { RedisConnection } from "../lib/redis.js";
import type { JobContext, WorkerServices } from "./job-context.js";
import type { JobStopControl } from "./job-stop-control.js";

/** What every job of a worker shares. */
export interface SharedContext {
  logger: Logger;
  db: Db;
  redis: RedisConnection | undefined;
  config: Config;
  prefix: string;
  services: WorkerServices;
  invalidator: CacheInvalidator;
  /** Jobs waiting in the worker's queue. */
  waitingJobs(): Promise<number>;
}

/**
 * A job postponed to the back of the line is first delayed this long, then
 * promoted at once; should the promotion not happen (the process dies in
 * between), the job still runs again after this.
 */
const backOfLineFallbackMs = 5000;

/**
 * A job's context. A class, not an object literal: a literal with a `get log()`
 * accessor carries a new getter function per job, and with it a hidden class
 * (map) of its own, which V8 keeps in its old generation; the no-op bench
 * measured that as about twice raw BullMQ's garbage-collection time per job.
 * Here the getter sits on the prototype and every context shares one map.
 * `invalidateCache` and `reportProgress` stay own properties, because
 * handlers destructure them from the context.
 */
export class WorkerJobContext implements JobContext {
  readonly redis: RedisConnection | undefined;
  readonly config: Config;
  readonly prefix: string;
  readonly services: WorkerServices;
  readonly sharedCache: JobContext["sharedCache"];
  readonly invalidateCache: (keys: string[]) => Promise<void>;
  readonly reportProgress: (progress: number | object) => Promise<void>;
  readonly #logger: Logger;
  readonly #sharedDb: Db;
  readonly #stop: JobStopControl;
  readonly #shared: SharedContext;
  readonly #token: string | undefined;
  #log: Logger | undefined;
  #db: Db | undefined;
  #tracked: BackendTrackingPool | undefined;
  #trackedDirect: BackendTrackingPool | undefined;
  /** The last progress reported: what the job had committed, for the failure of a cancelled job. */
  lastProgress: unknown;

  constructor(
    readonly job: Job,
    shared: SharedContext,
    stop: JobStopControl,
    /** The worker's lock token on the job; postponing needs it. */
    token?: string,
  ) {
    this.#shared = shared;
    this.#token = token;
    this.#stop = stop;
    this.#logger = shared.logger;
    this.#sharedDb = shared.db;
    this.redis = shared.redis;
    this.config = shared.config;
    this.prefix = shared.prefix;
    this.services = shared.services;
    this.sharedCache = shared.invalidator.sharedTier;
    this.invalidateCache = (keys) => shared.invalidator.invalidate(keys);
    this.reportProgress = async (progress) => {
      this.lastProgress = progress;
      try {
        await job.updateProgress(progress);
      } catch (err) {
        this.log.warn({ err }, "could not report progress");
      }
    };
  }

  /** Built on first read (JobStopControl): most short jobs never read it. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** The database, its pools tracking this job's connections (built on first use: many jobs never touch it). */
  get db(): Db {
    if (!this.#db) {
      const shared = this.#sharedDb;
      const direct = shared.directPool;
      // Behind PgBouncer a pooled connection's BackendKeyData pid is PgBouncer's own, not a server backend:
      // pg_cancel_backend on it could hit an unrelated session, so only direct connections' pids are kept.
      this.#tracked = trackBackends(shared.pool, this.signal, shared.reportQueryTime, { recordPids: direct === undefined });
      this.#trackedDirect = direct && trackBackends(direct, this.signal, shared.reportQueryTime);
      const directView = this.#trackedDirect?.pool;
      this.#db = {
        prisma: shared.prisma,
        pool: this.#tracked.pool,
        directPool: directView,
        reportQueryTime: shared.reportQueryTime,
        close: () => shared.close(),
      };
    }
    return this.#db;
  }

  get cleanupPool() {
    return sessionPool(this.#sharedDb);
  }

  /** Cancels the running statement of every connection this job holds (from another connection of the session pool). */
  async cancelDatabaseWork(): Promise<number> {
    const pids = [...(this.#tracked?.backends() ?? []), ...(this.#trackedDirect?.backends() ?? [])];
    return cancelBackends(sessionPool(this.#sharedDb), pids);
  }

  /**
   * BullMQ's documented way to put an active job back: moveToDelayed without
   * spending an attempt, then DelayedError, which the worker takes as "moved
   * elsewhere", neither failed nor completed. For the back of the line the
   * job is then promoted: both backends queue a promoted job behind those
   * waiting, whereas a job merely due again takes back its first place on
   * the PostgreSQL backend (its order is the enqueue order).
   */
  async postpone(delayMs: number): Promise<never> {
    if (this.#token === undefined) throw new Error("postpone needs the worker's lock token on the job; this context has none");
    const toBack = delayMs <= 0;
    // Whole milliseconds: the PostgreSQL backend stores the time as a bigint.
    await this.job.moveToDelayed(Date.now() + (toBack ? backOfLineFallbackMs : Math.ceil(delayMs)), this.#token);
    if (toBack) {
      await this.job.promote().catch((err: unknown) => {
        this.log.warn({ err }, `could not move the postponed job to the back of the line; it runs again in ${backOfLineFallbackMs} ms`);
      });
    }
    throw new DelayedError();
  }

  waitingJobs(): Promise<number> {
    return this.#shared.waitingJobs();
  }

  /** Child logger carrying `{ queue, jobId }`, built on first use: most short jobs never log. */
  get log(): Logger {
    this.#log ??= this.#logger.child({ jobId: this.job.id });
    return this.#log;
  }
}
