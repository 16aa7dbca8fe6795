import type { Job, JobType } from "bullmq";
import type pg from "pg";
import type { Config } from "../../src/lib/config.js";
import { queueStoreOptions } from "../../src/lib/config.js";
import type { Logger } from "../../src/lib/logger.js";
import { createQueueStore, type QueueStore } from "../../src/lib/queue-store.js";
import { type QueueName, queueNames } from "../../src/queues/contracts.js";
import { type OutboxRelay, startOutboxRelay } from "../../src/queues/outbox-relay.js";
import { Producer } from "../../src/queues/producer.js";
import { memoryLogger } from "./test-env.js";
import { waitFor } from "./wait-for.js";

/**
 * What the transactional-enqueue tests hold: a producer on the configured
 * backend, on Redis an in-process outbox relay (unless the test runs its own
 * relay processes), and ways to read what reached the queues.
 */
export interface TransactionalQueues {
  config: Config;
  producer: Producer;
  relay: OutboxRelay | undefined;
  /** Every job of `queue`, in any state. */
  jobs(queue: QueueName): Promise<Job[]>;
  /** Rows waiting in dbjobs.job_outbox. */
  outboxRows(): Promise<number>;
  /** On Redis: resolves once every committed outbox row has been relayed. At once on PostgreSQL, where nothing waits. */
  settled(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const allJobStates: JobType[] = ["waiting", "delayed", "active", "completed", "failed", "prioritized", "waiting-children"];

export async function openTransactionalQueues(config: Config, pool: pg.Pool, options: { relay?: boolean; logger?: Logger } = {}): Promise<TransactionalQueues> {
  const logger = options.logger ?? memoryLogger("warn").logger;
  const producer = Producer.fromConfig(config, logger);
  let store: QueueStore | undefined;
  let relay: OutboxRelay | undefined;
  if (config.QUEUE_BACKEND === "redis" && options.relay !== false) {
    store = createQueueStore({ ...queueStoreOptions(config), role: "worker", applicationName: "dbjobs:test-relay", logger });
    relay = await startOutboxRelay({ databaseUrl: config.DATABASE_URL, store, logger, pollIntervalMs: 200 });
  }
  const outboxRows = async () => {
    const { rows } = await pool.query<{ rows: number }>(`SELECT count(*)::int AS rows FROM "dbjobs"."job_outbox"`);
    return rows[0]?.rows ?? 0;
  };
  return {
    config,
    producer,
    relay,
    async jobs(queue) {
      return (await producer.queue(queue)).getJobs(allJobStates, 0, -1);
    },
    outboxRows,
    async settled(timeoutMs = 30_000) {
      if (config.QUEUE_BACKEND !== "redis") return;
      // The relay deletes rows in the transaction that added them, so an empty outbox means every add is done.
      await waitFor("the outbox to be relayed", async () => (await outboxRows()) === 0, timeoutMs);
    },
    async close() {
      await relay?.close();
      await store?.close();
      // Each test has its own Redis prefix; remove its keys. On PostgreSQL the test database is dropped with its queues.
      if (config.QUEUE_BACKEND === "redis") {
        for (const name of queueNames) await (await producer.queue(name)).obliterate({ force: true }).catch(() => undefined);
      }
      await producer.close();
    },
  };
}

/** The options a job was stored with, minus those the relay adds on Redis (its id and the enqueue time). */
export function storedOptions(job: Job): Record<string, unknown> {
  const { jobId: _jobId, timestamp: _timestamp, ...rest } = job.opts as Record<string, unknown>;
  return rest;
}
