import type { IQueueBackend, JobsOptions, Processor, Queue, QueueEvents, Telemetry, Worker, WorkerOptions } from "bullmq";
import type pg from "pg";
import type { ClosingWorker } from "./closing-worker.js";
import { ConfigError, QueueBackendUnavailableError } from "./errors.js";
import type { Logger } from "./logger.js";
import { redactUrl } from "./logger.js";
import { type MetricsStore, redisMetricsStore } from "./metrics.js";
import { postgresMetricsStore } from "./metrics-postgres.js";
import { createOutageLog } from "./outage-log.js";
import { handlePoolErrors } from "./pool-errors.js";
import {
  bullmqPrefix,
  createRedis,
  describeRedisTarget,
  type RedisClusterNode,
  type RedisConnection,
  type RedisRole,
  type RedisTarget,
  redisKeyPrefix,
  redisSetting,
  waitForRedis,
} from "./redis.js";
import { resendTerminatedQueries } from "./resend-terminated.js";
import { queueTelemetry } from "./tracing.js";

/**
 * Where the queues live: Redis, or PostgreSQL through BullMQ's PostgreSQL
 * backend (its objects in schema `bullmq`). Everything that builds a BullMQ
 * Queue, Worker or QueueEvents goes through a store, so no other module
 * knows which one is in use. bullmq and pg are loaded on first use, so
 * importing this module (and the producer) loads neither.
 */
export type QueueBackendKind = "redis" | "postgres";

// biome-ignore lint/suspicious/noExplicitAny: the stores hand out BullMQ objects for any payload; contracts type them at the edges
export type AnyQueue = Queue<any, any, string, any, any, string, IQueueBackend, any>;
// biome-ignore lint/suspicious/noExplicitAny: as above
export type AnyWorker = Worker<any, any, string, IQueueBackend, any, any>;
// biome-ignore lint/suspicious/noExplicitAny: as above
export type AnyQueueEvents = QueueEvents<any, IQueueBackend, any>;

export interface QueueStore {
  readonly kind: QueueBackendKind;
  /** "Redis" or "PostgreSQL", for messages. */
  readonly service: string;
  /** The store's URL with its password masked. */
  readonly redactedUrl: string;
  /** The variable that configures it. */
  readonly setting: string;
  /**
   * Prefix of the store's own keys and channels: QUEUE_PREFIX, hash-tagged on a Redis Cluster (redis.ts redisKeyPrefix).
   * BullMQ's keys on a cluster use a prefix per queue (`queuePrefix`). The schema `bullmq` isolates queues on PostgreSQL.
   */
  readonly prefix: string;
  /** The BullMQ prefix of `queue`: `prefix`, except on a Redis Cluster, where each queue has its own hash tag. */
  queuePrefix(queue: string): string;
  /** The Redis connection of a Redis store (for the cache's Redis tier and metrics), else undefined. */
  readonly redis: RedisConnection | undefined;
  /** The pg pool of a PostgreSQL store (search_path `bullmq`), else undefined. */
  readonly pool: pg.Pool | undefined;
  queue(name: string, options?: { defaultJobOptions?: JobsOptions }): Promise<AnyQueue>;
  /** A worker that takes no job once its close() has begun (closing-worker.ts). */
  worker(name: string, processor: Processor, options: Omit<WorkerOptions, "connection" | "prefix">): Promise<ClosingWorker>;
  queueEvents(name: string): Promise<AnyQueueEvents>;
  /** Resolves once the store answers; rejects with a QueueBackendUnavailableError after `timeoutMs`, having changed nothing. */
  ready(timeoutMs: number): Promise<void>;
  /** Where this process flushes its metrics. */
  metrics(): MetricsStore;
  /** Jobs of `queue` that ended in `state` at or after `sinceMs` (epoch ms); for jobs-per-minute figures. */
  finishedSince(queue: string, state: "completed" | "failed", sinceMs: number): Promise<number>;
  /**
   * When the oldest job waiting in `queue` (the `waiting` state, priority 0) was added, epoch ms; undefined when none waits.
   * PostgreSQL store only: Redis's is read from its wait list's order (dashboard/metrics.ts).
   */
  readonly oldestWaitingAddedAt?: (queue: string) => Promise<number | undefined>;
  close(): Promise<void>;
}

export interface QueueStoreOptions {
  kind: QueueBackendKind;
  /** Redis store: its URL. */
  redisUrl?: string;
  /** Redis store on a Redis Cluster: its seed nodes (then `redisUrl` is not used). */
  redisClusterNodes?: readonly RedisClusterNode[];
  /** Redis store: reuse a connection (its owner closes it). */
  redisConnection?: RedisConnection;
  /** Redis store: `producer` fails fast, `worker` waits through outages. @defaultValue producer */
  role?: RedisRole;
  /** PostgreSQL store: the database the queues live in. */
  databaseUrl?: string;
  /** PostgreSQL store: connections in its pool. @defaultValue 10 */
  poolSize?: number;
  /** PostgreSQL store: cancel any statement running longer (producers: an add that cannot finish rolls back). @defaultValue none */
  statementTimeoutMs?: number;
  /** Sent as application_name. @defaultValue dbjobs */
  applicationName?: string;
  prefix?: string;
  logger?: Logger;
}

/** BullMQ's telemetry option once tracing has started (tracing.ts): queues then trace adds, workers each job's `process` span. */
function traced(): { telemetry?: Telemetry } {
  const telemetry = queueTelemetry();
  return telemetry ? { telemetry } : {};
}

/** The schema BullMQ's PostgreSQL backend keeps its tables and functions in. */
export const queueSchema = "bullmq";

export function createQueueStore(options: QueueStoreOptions): QueueStore {
  return options.kind === "redis" ? redisStore(options) : postgresStore(options);
}

function redisStore(options: QueueStoreOptions): QueueStore {
  const target: RedisTarget = options.redisClusterNodes?.length ? { clusterNodes: options.redisClusterNodes } : (options.redisUrl ?? "redis://127.0.0.1:6379");
  const redis = options.redisConnection ?? createRedis(target, options.role ?? "producer", options.logger);
  const basePrefix = options.prefix ?? "dbjobs";
  const prefix = redisKeyPrefix(redis, basePrefix);
  const queuePrefix = (queue: string) => bullmqPrefix(redis, basePrefix, queue);
  const opened: { close(): Promise<unknown> }[] = [];
  const quiet = <T extends { on(event: "error", listener: (err: Error) => void): unknown }>(emitter: T): T => {
    // Without a listener BullMQ prints every connection error as a stack dump; the connection logs outages itself.
    emitter.on("error", (err) => options.logger?.debug({ err }, "queue connection error"));
    return emitter;
  };
  return {
    kind: "redis",
    service: "Redis",
    redactedUrl: describeRedisTarget(target),
    setting: redisSetting(target),
    prefix,
    queuePrefix,
    redis,
    pool: undefined,
    async queue(name, queueOptions = {}) {
      const { Queue } = await import("bullmq");
      return quiet(new Queue(name, { connection: redis, prefix: queuePrefix(name), ...queueOptions, ...traced() }));
    },
    async worker(name, processor, workerOptions) {
      const { ClosingWorker } = await import("./closing-worker.js");
      return quiet(new ClosingWorker(name, processor, { ...workerOptions, connection: redis, prefix: queuePrefix(name), ...traced() }));
    },
    async queueEvents(name) {
      const { QueueEvents } = await import("bullmq");
      // A blocking reader: its own connection that waits through outages.
      const connection = createRedis(target, "worker", options.logger);
      const events = quiet(new QueueEvents(name, { connection, prefix: queuePrefix(name), ...traced() }));
      opened.push({ close: async () => connection.disconnect() });
      const close = events.close.bind(events);
      events.close = async () => {
        await close();
        connection.disconnect();
      };
      return events;
    },
    ready: (timeoutMs) => waitForRedis(redis, target, timeoutMs),
    metrics: () => redisMetricsStore(redis, prefix),
    // Finished sets are scored by finish time, so a count by score is exact and cheap.
    finishedSince: (queue, state, sinceMs) => redis.zcount(`${queuePrefix(queue)}:${queue}:${state}`, sinceMs, "+inf"),
    async close() {
      await Promise.allSettled(opened.map((entry) => entry.close()));
      if (!options.redisConnection) redis.disconnect();
    },
  };
}

function postgresStore(options: QueueStoreOptions): QueueStore {
  const url = options.databaseUrl;
  if (!url)
    throw new QueueBackendUnavailableError("PostgreSQL", "(no URL)", "QUEUE_DATABASE_URL, DIRECT_DATABASE_URL or DATABASE_URL", "no database URL given");
  let pool: pg.Pool | undefined;
  const openPool = async (): Promise<pg.Pool> => {
    if (pool) return pool;
    const { default: pgModule } = await import("pg");
    // BullMQ's SQL names its objects unqualified: every connection of this pool resolves them in schema bullmq.
    pool = new pgModule.Pool({
      connectionString: url,
      max: options.poolSize ?? 10,
      options: `-c search_path=${queueSchema}${options.statementTimeoutMs ? ` -c statement_timeout=${Math.round(options.statementTimeoutMs)}` : ""}`,
      keepAlive: true,
      application_name: options.applicationName ?? "dbjobs",
      connectionTimeoutMillis: 5000,
    });
    handlePoolErrors(pool, options.logger, "queue-database");
    resendTerminatedQueries(pool);
    return pool;
  };
  const setting = "QUEUE_DATABASE_URL (or DIRECT_DATABASE_URL, else DATABASE_URL)";
  // Every caller of ready() (producers, /health, the dashboard's probe) reports here, so an outage is a few lines, not one per request.
  const outage = createOutageLog({ logger: options.logger, service: "PostgreSQL queue database", fields: { url: redactUrl(url), setting } });
  const backend = async () => (await import("bullmq")).createPostgresBackend;
  const quiet = <T extends { on(event: "error", listener: (err: Error) => void): unknown }>(emitter: T): T => {
    emitter.on("error", (err) => options.logger?.debug({ err }, "queue connection error"));
    return emitter;
  };
  const store: QueueStore = {
    kind: "postgres",
    service: "PostgreSQL",
    redactedUrl: redactUrl(url),
    setting,
    prefix: options.prefix ?? "dbjobs",
    queuePrefix: () => options.prefix ?? "dbjobs",
    redis: undefined,
    get pool() {
      return pool;
    },
    async queue(name, queueOptions = {}) {
      const { Queue } = await import("bullmq");
      const [connection, createBackend] = [await openPool(), await backend()];
      return quiet(unlistenOnClose(connection, () => new Queue(name, { connection, ...queueOptions, ...traced() }, createBackend))) as AnyQueue;
    },
    async worker(name, processor, workerOptions) {
      const { ClosingWorker } = await import("./closing-worker.js");
      const [connection, createBackend] = [await openPool(), await backend()];
      return quiet(unlistenOnClose(connection, () => new ClosingWorker(name, processor, { ...workerOptions, connection, ...traced() }, createBackend)));
    },
    async queueEvents(name) {
      const { QueueEvents } = await import("bullmq");
      const [connection, createBackend] = [await openPool(), await backend()];
      return quiet(unlistenOnClose(connection, () => new QueueEvents(name, { connection, ...traced() }, createBackend))) as AnyQueueEvents;
    },
    async ready(timeoutMs) {
      const connected = await openPool();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          connected.query("SELECT 1"),
          new Promise((_resolve, reject) => {
            timer = setTimeout(() => reject(Object.assign(new Error(`no answer for ${timeoutMs} ms`), { code: "timeout" })), timeoutMs);
          }),
        ]);
        outage.up();
      } catch (err) {
        const code = errorCodeOf(err);
        outage.down(code);
        throw new QueueBackendUnavailableError("PostgreSQL", redactUrl(url), setting, code === "timeout" ? `no answer for ${timeoutMs} ms` : code, {
          cause: err,
          reasonCode: code,
        });
      } finally {
        clearTimeout(timer);
      }
    },
    metrics: () => postgresMetricsStore(() => openPool()),
    async finishedSince(queue, state, sinceMs) {
      // Takes $1 queue, $2 state, $3 epoch ms. Served by BullMQ's job_finished_idx (queue, state, finished_at_ms).
      const { rows } = await (await openPool()).query<{ count: number }>(
        "SELECT count(*)::int AS count FROM job WHERE queue = $1 AND state = $2::job_state AND finished_at_ms >= $3",
        [queue, state, sinceMs],
      );
      return rows[0]?.count ?? 0;
    },
    async oldestWaitingAddedAt(queue) {
      // Takes $1 queue. Returns the least added_at_ms (BullMQ's job.timestamp) of its waiting, unprioritized jobs (get_counts'
      // "waiting"), or null. Reads the queue's waiting rows through BullMQ's job_ready_idx: one pass over the backlog per scrape.
      const { rows } = await (await openPool()).query<{ oldest: string | null }>(
        "SELECT min(added_at_ms) AS oldest FROM job WHERE queue = $1 AND state = 'waiting' AND priority = 0",
        [queue],
      );
      const oldest = rows[0]?.oldest;
      return oldest == null ? undefined : Number(oldest);
    },
    async close() {
      await pool?.end().catch(() => undefined);
      pool = undefined;
    },
  };
  return store;
}

/**
 * BullMQ 6.7's PostgresConnection adds an 'error' listener to a pool it was
 * given and does not remove it on close, so every Queue built and closed on
 * the store's pool would leave one behind (with the closed connection it
 * holds): a leak for callers that open queues per request. Building is
 * synchronous, so the listeners that appear meanwhile are that object's own.
 */
type Closable = { close(...args: never[]): Promise<void> };

function unlistenOnClose<T extends Closable>(pool: pg.Pool, build: () => T): T {
  const before = new Set(pool.listeners("error"));
  const built = build();
  const added = pool.listeners("error").filter((listener) => !before.has(listener));
  // Keeps close's arguments (Worker.close(force)).
  const closable = built as unknown as { close(...args: unknown[]): Promise<void> };
  const close = closable.close.bind(built);
  closable.close = async (...args) => {
    try {
      await close(...args);
    } finally {
      for (const listener of added) pool.off("error", listener as (err: Error) => void);
    }
  };
  return built;
}

/** A connection error's code (errno name or SQLSTATE), else "timeout" for our own deadline, else "error". */
function errorCodeOf(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && /^[A-Za-z0-9_]{1,40}$/.test(code) ? code : "error";
}

/** The Redis connection of a Redis store; features still written against Redis keys call this. */
export function requireRedis(store: QueueStore, feature: string): RedisConnection {
  if (store.redis) return store.redis;
  throw new ConfigError(`${feature} needs the Redis queue backend for now: set QUEUE_BACKEND=redis and REDIS_URL.`);
}

/** The pg pool of a PostgreSQL store, opened first (failing after `connectTimeoutMs`); for dbjobs' own SQL on the queue database. */
export async function queueDatabasePool(store: QueueStore, connectTimeoutMs: number): Promise<pg.Pool> {
  if (!store.pool) await store.ready(connectTimeoutMs);
  if (store.pool) return store.pool;
  throw new ConfigError(`The ${store.service} queue store has no PostgreSQL pool; this needs QUEUE_BACKEND=postgres.`);
}
