import type { Job } from "bullmq";
import pg from "pg";
import { pino } from "pino";
import { bulkMessagingContract } from "../src/jobs/bulk-messaging/contract.js";
import { type Config, loadConfig, queueStoreOptions } from "../src/lib/config.js";
import { createLogger } from "../src/lib/logger.js";
import { createQueueStore } from "../src/lib/queue-store.js";
import type { QueueContract } from "../src/queues/contract.js";
import { startOutboxRelay } from "../src/queues/outbox-relay.js";
import { Producer } from "../src/queues/producer.js";
import { startWorker } from "../src/queues/start-worker.js";
import { benchRun } from "./bench-run.js";
import { copyOfSource, percentile, type SourceDatabase, sleep, within } from "./queue-backend-side.js";
import { benchPrefix, benchRedisUrl } from "./support.js";

/**
 * Commit→start latency of jobs enqueued in application transactions at a
 * steady rate: transactions are started on a fixed schedule (RATE per
 * second, on a pool of PRODUCER_CONNECTIONS, so a slow commit does not
 * delay the next one), each BEGIN, producer.enqueue(…, { tx }), COMMIT; a
 * job's latency is from just before its COMMIT is sent to its handler's
 * start in a dbjobs worker of this process. On Redis the job reaches the
 * queue through the outbox and an outbox relay, also in this process.
 */
export const RATE = Number(process.env.BENCH_TX_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_TX_SECONDS ?? 5);
const PRODUCER_CONNECTIONS = 8;
const WORKER_CONCURRENCY = 8;
export const QUEUE = bulkMessagingContract.name;

/** A bulk-messaging payload of ten patients: a realistic size for a job enqueued beside its campaign row. */
export const benchPayload = {
  campaignId: "bench-campaign",
  channel: "sms" as const,
  body: "Hello {{firstName}}, this is a reminder of your appointment tomorrow at 9:30. Reply STOP to opt out.",
  patientIds: Array.from({ length: 10 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`),
};

export interface LatencyFigures {
  p50Ms: number;
  p99Ms: number;
  jobs: number;
}

function devNullLogger() {
  return createLogger({ level: "info" }, pino.destination({ dest: "/dev/null", sync: false }));
}

/** One run: a worker (and on Redis a relay) on a fresh copy, RATE transactions a second for SECONDS, the delays' p50 and p99. */
export async function measureCommitToStart(source: SourceDatabase, backend: "postgres" | "redis"): Promise<LatencyFigures> {
  const copy = await copyOfSource(source, `tx_latency_${backend}`);
  const prefix = benchPrefix();
  // No REDIS_URL on PostgreSQL: the cache's shared tier would be one more service than that backend needs.
  const config = loadConfig({
    QUEUE_BACKEND: backend,
    DATABASE_URL: copy.url,
    QUEUE_PREFIX: prefix,
    LOG_LEVEL: "info",
    ...(backend === "redis" ? { REDIS_URL: benchRedisUrl } : {}),
  });
  const logger = devNullLogger();
  const started = new Map<string, number>();
  const committing = new Map<string, number>();
  const pool = new pg.Pool({ connectionString: copy.url, max: PRODUCER_CONNECTIONS });
  const producer = Producer.fromConfig(config, logger);
  const closers: (() => Promise<unknown>)[] = [];
  try {
    const worker = await startWorker(QUEUE, {
      config,
      logger,
      concurrency: WORKER_CONCURRENCY,
      job: {
        contract: bulkMessagingContract as unknown as QueueContract,
        handler: async (_payload, context) => {
          started.set(String((context.job as Job).id), performance.now());
          return undefined;
        },
      },
    });
    closers.push(() => worker.close());
    if (backend === "redis") await startRelay(config, logger, closers);
    // One untimed transaction first: connections made, statements planned.
    await enqueueInTransaction(pool, producer, () => undefined);
    const total = Math.round(RATE * SECONDS);
    const first = performance.now();
    const transactions: Promise<void>[] = [];
    for (let n = 0; n < total; n++) {
      const wait = first + (n * 1000) / RATE - performance.now();
      if (wait > 0) await sleep(wait);
      transactions.push(enqueueInTransaction(pool, producer, (id) => committing.set(id, performance.now())));
    }
    await Promise.all(transactions);
    await within(
      30_000,
      `${backend}: ${total} committed jobs started`,
      waitUntil(() => [...committing.keys()].every((id) => started.has(id))),
    );
    const delays = [...committing].map(([id, at]) => (started.get(id) as number) - at);
    return { p50Ms: percentile(delays, 0.5), p99Ms: percentile(delays, 0.99), jobs: delays.length };
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await producer.close();
    await pool.end();
    if (backend === "redis") await benchRun.removeKeys(prefix);
    await copy.drop();
  }
}

/** BEGIN, enqueue, COMMIT on a client of `pool`; `beforeCommit` gets the job id just before COMMIT is sent. */
export async function enqueueInTransaction(pool: pg.Pool, producer: Producer, beforeCommit: (id: string) => void): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const { id } = await producer.enqueue(QUEUE, benchPayload, { tx: client });
    beforeCommit(id);
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** An outbox relay as `dbjobs relay` starts it (its defaults: batches of 500, LISTEN with a 1 s poll as fallback). */
async function startRelay(config: Config, logger: ReturnType<typeof devNullLogger>, closers: (() => Promise<unknown>)[]): Promise<void> {
  const store = createQueueStore({ ...queueStoreOptions(config), role: "worker", poolSize: 2, applicationName: "dbjobs:relay", logger });
  closers.push(() => store.close());
  const relay = await startOutboxRelay({ databaseUrl: config.DATABASE_URL, store, logger });
  closers.push(() => relay.close());
}

async function waitUntil(done: () => boolean): Promise<void> {
  while (!done()) await sleep(20);
}
