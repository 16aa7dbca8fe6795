import { type Job, type JobsOptions, Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "../lib/logger.js";
import { createRedis, waitForRedis } from "../lib/redis.js";
import { getContract, type PayloadInput, type QueueName } from "./contracts.js";
import { validatePayload } from "./validate-payload.js";

/**
 * The typed producer for applications. A bad payload is rejected here, before
 * it reaches Redis, with a PayloadValidationError naming each bad field.
 * While Redis is down, `enqueue` fails within `connectTimeoutMs` with a
 * QueueBackendUnavailableError (one line, credentials masked) and adds
 * nothing, so a producer's request never hangs on an outage; the connection
 * keeps reconnecting in the background.
 */
export interface ProducerOptions {
  /** @defaultValue redis://127.0.0.1:6379 */
  redisUrl?: string;
  /** Reuse a connection; it should be created with role "producer" (give its `redisUrl` too, for error messages). */
  connection?: Redis;
  /** BullMQ key prefix; must match the workers'. @defaultValue dbjobs */
  prefix?: string;
  /** How long `enqueue` waits for Redis before failing. @defaultValue 3000 */
  connectTimeoutMs?: number;
  /** Connection errors are logged here, once per outage; without one they are dropped (never a stack dump). */
  logger?: Logger;
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

export class Producer {
  private readonly connection: Redis;
  private readonly ownsConnection: boolean;
  private readonly queues = new Map<QueueName, Queue>();
  readonly prefix: string;

  private readonly redisUrl: string;
  private readonly connectTimeoutMs: number;

  constructor(private readonly options: ProducerOptions = {}) {
    this.redisUrl = options.redisUrl ?? "redis://127.0.0.1:6379";
    this.connection = options.connection ?? createRedis(this.redisUrl, "producer", options.logger);
    this.ownsConnection = !options.connection;
    this.prefix = options.prefix ?? "dbjobs";
    this.connectTimeoutMs = options.connectTimeoutMs ?? 3000;
  }

  /** Resolves once the queue store answers; rejects with a QueueBackendUnavailableError after `connectTimeoutMs`. */
  ready(): Promise<void> {
    return waitForRedis(this.connection, this.redisUrl, this.connectTimeoutMs);
  }

  /** Validates `payload` against the queue's schema and adds the job. */
  async enqueue<Q extends QueueName>(queue: Q, payload: PayloadInput<Q>, options: JobsOptions = {}): Promise<Job> {
    return this.enqueueUnknown(queue, payload, options);
  }

  /** Same as `enqueue` for payloads whose type is not known at compile time (CLI, HTTP). */
  async enqueueUnknown(queue: string, payload: unknown, options: JobsOptions = {}): Promise<Job> {
    const contract = getContract(queue);
    const data = validatePayload(contract.name, contract.payload, payload);
    // Only a connected client sends the add, so an add never lands after the caller was told it failed.
    await this.ready();
    return this.queue(contract.name).add(contract.name, payload, { ...deduplicationOptions(contract.deduplicate?.(data as never)), ...options });
  }

  /** The BullMQ Queue for `name`, created once and reused. */
  queue(name: QueueName): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.connection, prefix: this.prefix, defaultJobOptions: getContract(name).jobOptions });
      // Without a listener BullMQ prints every connection error as a stack dump; the connection logs outages itself.
      queue.on("error", (err) => this.options.logger?.debug({ err, queue: name }, "queue connection error"));
      this.queues.set(name, queue);
    }
    return queue;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
    if (this.ownsConnection) this.connection.disconnect();
  }
}
