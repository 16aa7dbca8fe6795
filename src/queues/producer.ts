import type { Job, JobsOptions } from "bullmq";
import type pg from "pg";
import { collectRecipientIds, type StagedRecipientList, stageRecipientList } from "../jobs/bulk-messaging/recipient-lists.js";
import type { Config } from "../lib/config.js";
import { queueStoreOptions } from "../lib/config.js";
import { DbjobsError } from "../lib/errors.js";
import { type Logger, redactUrl } from "../lib/logger.js";
import { type AnyQueue, createQueueStore, type QueueBackendKind, type QueueStore } from "../lib/queue-store.js";
import type { RedisClusterNode, RedisConnection } from "../lib/redis.js";
import { getContract, type PayloadInput, type QueueName } from "./contracts.js";
import { checkEnqueueOptions, type EnqueueOptions } from "./job-options.js";
import { type EnqueuedInTransaction, enqueueInTransaction, type TransactionClient } from "./transactional-enqueue.js";
import { validatePayload } from "./validate-payload.js";

export type { EnqueueOptions } from "./job-options.js";
export type { EnqueuedInTransaction, TransactionClient } from "./transactional-enqueue.js";

/**
 * The typed producer for applications. A bad payload is rejected here, before
 * it reaches the queue store, with a PayloadValidationError naming each bad
 * field. While the store (PostgreSQL or Redis) does not answer, `enqueue`
 * fails within `connectTimeoutMs` with a QueueBackendUnavailableError (one
 * line, credentials masked) and adds nothing, so a producer's request never
 * hangs on an outage.
 */
export interface ProducerOptions {
  /** Where the queues live; must match the workers'. @defaultValue "redis" when `redisUrl`, `redisClusterNodes` or `connection` is given, else "postgres" */
  backend?: QueueBackendKind;
  /** PostgreSQL backend: the database the queues live in. @defaultValue postgresql://postgres@127.0.0.1:5432/dbjobs */
  databaseUrl?: string;
  /** Redis backend. @defaultValue redis://127.0.0.1:6379 */
  redisUrl?: string;
  /** Redis backend on a Redis Cluster: its seed nodes (as REDIS_CLUSTER_NODES), instead of `redisUrl`. */
  redisClusterNodes?: readonly RedisClusterNode[];
  /** Redis backend: reuse a connection; it should be created with role "producer" (give its `redisUrl` too, for error messages). */
  connection?: RedisConnection;
  /** BullMQ key prefix on Redis; must match the workers'. @defaultValue dbjobs */
  prefix?: string;
  /** How long `enqueue` waits for the queue store before failing. @defaultValue 3000 */
  connectTimeoutMs?: number;
  /** Connection errors are logged here, once per outage; without one they are dropped (never a stack dump). */
  logger?: Logger;
  /** Use this store instead of opening one; it is closed with the producer only when `closeStore` is set. */
  store?: QueueStore;
  /** @defaultValue false */
  closeStore?: boolean;
  /**
   * The application's database (DATABASE_URL), where `stageRecipients` stages
   * recipient lists for the workers to read.
   * @defaultValue databaseUrl, else postgresql://postgres@127.0.0.1:5432/dbjobs
   */
  appDatabaseUrl?: string;
  /** `stageRecipients` first deletes lists unused this many days (RECIPIENT_LIST_RETENTION_DAYS). @defaultValue 7 */
  recipientListRetentionDays?: number;
}

/**
 * Turns a job's `deduplicate` answer into BullMQ options. The job waits
 * `ttlMs` before it runs, and every enqueue with the same id until it starts
 * collapses into it; one that arrives while it runs is kept (only the latest)
 * and runs once right after it (BullMQ `keepLastIfActive`). So a burst of
 * enqueues costs one run, and no enqueue is lost to a run that had already
 * read the data: BullMQ's plain `ttl` throttling would drop an enqueue made
 * after the job had read the rows but within the window, leaving stale results.
 */
export function deduplicationOptions(deduplication: { id: string; ttlMs: number } | undefined): JobsOptions {
  if (!deduplication) return {};
  return { deduplication: { id: deduplication.id, keepLastIfActive: true }, delay: deduplication.ttlMs };
}

/** Job options plus the transaction to enqueue in. */
export interface EnqueueInTransactionOptions extends EnqueueOptions {
  /**
   * A Prisma interactive-transaction client (`tx` of `prisma.$transaction(async (tx) => …)`)
   * or a pg client inside BEGIN … COMMIT: the job is written in that
   * transaction, so a commit gives exactly one job, a rollback none, and the
   * job never starts before the transaction's rows are visible. On Redis it
   * reaches the queue through the outbox and `dbjobs relay`.
   */
  tx: TransactionClient;
}

export class Producer {
  readonly store: QueueStore;
  private readonly ownsStore: boolean;
  private readonly queues = new Map<QueueName, Promise<AnyQueue>>();
  private readonly connectTimeoutMs: number;
  private readonly appDatabaseUrl: string;
  private readonly recipientListRetentionDays: number;
  private appPool: Promise<pg.Pool> | undefined;

  constructor(options: ProducerOptions = {}) {
    this.ownsStore = !options.store || options.closeStore === true;
    this.store =
      options.store ??
      createQueueStore({
        kind: options.backend ?? (options.redisUrl || options.redisClusterNodes?.length || options.connection ? "redis" : "postgres"),
        redisUrl: options.redisUrl,
        redisClusterNodes: options.redisClusterNodes,
        redisConnection: options.connection,
        role: "producer",
        databaseUrl: options.databaseUrl ?? "postgresql://postgres@127.0.0.1:5432/dbjobs",
        poolSize: 4,
        statementTimeoutMs: options.connectTimeoutMs ?? 3000,
        applicationName: "dbjobs:producer",
        prefix: options.prefix,
        logger: options.logger,
      });
    this.connectTimeoutMs = options.connectTimeoutMs ?? 3000;
    this.appDatabaseUrl = options.appDatabaseUrl ?? options.databaseUrl ?? "postgresql://postgres@127.0.0.1:5432/dbjobs";
    this.recipientListRetentionDays = options.recipientListRetentionDays ?? 7;
  }

  /** A producer on the queue store `config` names (QUEUE_BACKEND and its URL). */
  static fromConfig(config: Config, logger?: Logger): Producer {
    return new Producer({
      store: createQueueStore({
        ...queueStoreOptions(config),
        role: "producer",
        poolSize: 4,
        statementTimeoutMs: config.QUEUE_CONNECT_TIMEOUT_MS,
        applicationName: "dbjobs:producer",
        logger,
      }),
      closeStore: true,
      connectTimeoutMs: config.QUEUE_CONNECT_TIMEOUT_MS,
      logger,
      appDatabaseUrl: config.DATABASE_URL,
      recipientListRetentionDays: config.RECIPIENT_LIST_RETENTION_DAYS,
    });
  }

  get prefix(): string {
    return this.store.prefix;
  }

  /** Resolves once the queue store answers; rejects with a QueueBackendUnavailableError after `connectTimeoutMs`. */
  ready(): Promise<void> {
    return this.store.ready(this.connectTimeoutMs);
  }

  /**
   * Validates `payload` against the queue's schema and adds the job. With
   * `{ tx }` the job is written in that transaction instead (see
   * EnqueueInTransactionOptions); a bad payload then throws before anything
   * is written, inside the transaction, so the caller can roll back.
   */
  enqueue<Q extends QueueName>(queue: Q, payload: PayloadInput<Q>, options: EnqueueInTransactionOptions): Promise<EnqueuedInTransaction>;
  enqueue<Q extends QueueName>(queue: Q, payload: PayloadInput<Q>, options?: EnqueueOptions): Promise<Job>;
  enqueue<Q extends QueueName>(
    queue: Q,
    payload: PayloadInput<Q>,
    options: EnqueueOptions | EnqueueInTransactionOptions = {},
  ): Promise<Job | EnqueuedInTransaction> {
    return this.enqueueUnknown(queue, payload, options);
  }

  /** Same as `enqueue` for payloads whose type is not known at compile time (CLI, HTTP). */
  enqueueUnknown(queue: string, payload: unknown, options: EnqueueInTransactionOptions): Promise<EnqueuedInTransaction>;
  enqueueUnknown(queue: string, payload: unknown, options?: EnqueueOptions): Promise<Job>;
  enqueueUnknown(queue: string, payload: unknown, options?: EnqueueOptions | EnqueueInTransactionOptions): Promise<Job | EnqueuedInTransaction>;
  async enqueueUnknown(queue: string, payload: unknown, options: EnqueueOptions | EnqueueInTransactionOptions = {}): Promise<Job | EnqueuedInTransaction> {
    const contract = getContract(queue);
    const data = validatePayload(contract.name, contract.payload, payload);
    checkEnqueueOptions(options);
    const { tx, ...jobOptions } = options as Partial<EnqueueInTransactionOptions>;
    const merged = { ...deduplicationOptions(contract.deduplicate?.(data as never)), ...jobOptions };
    if (tx) {
      // Only the caller's connection is used: neither Redis nor the store's pool needs to answer.
      return enqueueInTransaction({ tx, backend: this.store.kind, queue: contract.name, payload, defaults: contract.jobOptions, options: merged });
    }
    // Only a store that answered gets the add, so an add never lands after the caller was told it failed.
    await this.ready();
    const target = await this.queue(contract.name);
    return target.add(contract.name, payload, merged);
  }

  /**
   * Stages a bulk-messaging campaign's recipients (patient uuids) in the
   * application's database and returns the list's id, to enqueue as
   * `recipientListId`: the way to send to more patients than a payload should
   * carry (up to 100,000). Idempotent: the same ids give the same list id
   * (derived from the content) and write nothing new; with `listId` the list
   * is staged under that id, and the same id with other ids is refused.
   * Throws a RecipientListError naming the bad ids, staging nothing.
   */
  async stageRecipients(ids: Iterable<string>, options: { listId?: string } = {}): Promise<StagedRecipientList> {
    const sortedIds = collectRecipientIds(ids);
    this.appPool ??= import("pg").then(({ default: pgModule }) => {
      const pool = new pgModule.Pool({
        connectionString: this.appDatabaseUrl,
        max: 2,
        application_name: "dbjobs:producer",
        connectionTimeoutMillis: this.connectTimeoutMs,
      });
      // An idle connection that dies is replaced on the next staging; the error itself needs no handling.
      pool.on("error", () => undefined);
      return pool;
    });
    try {
      return await stageRecipientList(await this.appPool, sortedIds, { listId: options.listId, retentionDays: this.recipientListRetentionDays });
    } catch (err) {
      // One line naming the database and the setting, as enqueue does for the queue store; staging is one transaction, so nothing was written.
      const code = (err as { code?: unknown }).code;
      const unreachable = typeof code === "string" ? /^E[A-Z]+$/.test(code) : /timeout|terminated/i.test((err as Error).message ?? "");
      if (!unreachable) throw err;
      throw new DbjobsError(
        "DBJOBS_DATABASE_UNAVAILABLE",
        `Cannot reach PostgreSQL at ${redactUrl(this.appDatabaseUrl)} (${typeof code === "string" ? code : "timeout"}); nothing was staged. Start PostgreSQL or set DATABASE_URL (the producer's appDatabaseUrl).`,
        { cause: err },
      );
    }
  }

  /** The BullMQ Queue for `name`, created once and reused. */
  queue(name: QueueName): Promise<AnyQueue> {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = this.store.queue(name, { defaultJobOptions: getContract(name).jobOptions });
      this.queues.set(name, queue);
    }
    return queue;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map(async (queue) => (await queue).close()));
    this.queues.clear();
    const appPool = this.appPool;
    this.appPool = undefined;
    await appPool?.then((pool) => pool.end()).catch(() => undefined);
    if (this.ownsStore) await this.store.close();
  }
}
