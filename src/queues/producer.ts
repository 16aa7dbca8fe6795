import { type Job, type JobsOptions, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { createRedis } from "../lib/redis.js";
import { getContract, type PayloadInput, type QueueName } from "./contracts.js";
import { validatePayload } from "./validate-payload.js";

/**
 * The typed producer for applications. A bad payload is rejected here, before
 * it reaches Redis, with a PayloadValidationError naming each bad field.
 * Its Redis connection fails fast while Redis is down instead of queueing
 * commands, so a producer's request never hangs on an outage.
 */
export interface ProducerOptions {
  /** @defaultValue redis://127.0.0.1:6379 */
  redisUrl?: string;
  /** Reuse a connection; it should be created with role "producer". */
  connection?: Redis;
  /** BullMQ key prefix; must match the workers'. @defaultValue dbjobs */
  prefix?: string;
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

  constructor(options: ProducerOptions = {}) {
    this.connection = options.connection ?? createRedis(options.redisUrl ?? "redis://127.0.0.1:6379", "producer");
    this.ownsConnection = !options.connection;
    this.prefix = options.prefix ?? "dbjobs";
  }

  /** Validates `payload` against the queue's schema and adds the job. */
  async enqueue<Q extends QueueName>(queue: Q, payload: PayloadInput<Q>, options: JobsOptions = {}): Promise<Job> {
    return this.enqueueUnknown(queue, payload, options);
  }

  /** Same as `enqueue` for payloads whose type is not known at compile time (CLI, HTTP). */
  async enqueueUnknown(queue: string, payload: unknown, options: JobsOptions = {}): Promise<Job> {
    const contract = getContract(queue);
    const data = validatePayload(contract.name, contract.payload, payload);
    return this.queue(contract.name).add(contract.name, payload, { ...deduplicationOptions(contract.deduplicate?.(data as never)), ...options });
  }

  /** The BullMQ Queue for `name`, created once and reused. */
  queue(name: QueueName): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.connection, prefix: this.prefix, defaultJobOptions: getContract(name).jobOptions });
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
