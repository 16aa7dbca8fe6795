import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Queue, QueueEvents } from "bullmq";
import { loadConfig, redisTarget } from "../src/lib/config.js";
import { createDb } from "../src/lib/db.js";
import { createLogger } from "../src/lib/logger.js";
import { bullmqPrefix, createRedis, type RedisConnection } from "../src/lib/redis.js";
import { defaultJobOptions } from "../src/queues/contract.js";
import { Producer } from "../src/queues/producer.js";
import { benchRun } from "./bench-run.js";
import { processCpuMs } from "./host-cpu.js";
import { QUEUE } from "./noop-worker.js";
import { benchPrefix, benchRedisUrl, freshBenchDatabase } from "./support.js";
import { type BenchProcess, childEnv, spawnBenchProcess, spawnCliWorker } from "./worker-process.js";

/**
 * One measured run of the scaling bench (bench/scaling.ts) with k worker
 * processes: the queue filled, the processes started and ready, then the
 * clock. Each run has its own key prefix, and its own database for bulk
 * messaging; everything is removed at its end.
 */
export interface ScalingFigures {
  /** Jobs (no-op) or messages (bulk messaging) per second, over the window. */
  rate: number;
  /** CPU of the worker processes, summed, per job or message, µs (from /proc; NaN without it). */
  cpuUs: number;
  ms: number;
}

/** Where the no-op queue lives: the bench's Redis, or a cluster's seed nodes (REDIS_CLUSTER_NODES). */
export type RedisPlace = { kind: "single" } | { kind: "cluster"; nodes: string };

/** Settings the parent's environment may hold that would change what a worker process does here. */
const cleared = { REDIS_URL: undefined, REDIS_CLUSTER_NODES: undefined, MESSAGING_RATE_PER_SECOND: undefined, MESSAGING_RATE_BURST: undefined };

const summedCpuMs = (workers: BenchProcess[]) => workers.reduce((sum, worker) => sum + processCpuMs(worker.pid), 0);

/** Starts a no-op worker process (bench/scaling-worker-child.ts); resolves with it once its worker is started. */
async function startNoopChild(env: Record<string, string | undefined>, firstActive: number[]): Promise<BenchProcess> {
  const worker = spawnBenchProcess("bench/scaling-worker-child", [], childEnv(env), { ipc: true });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail("did not start within 60 s"), 60_000);
    const onExit = (code: number | null) => fail(`exited (code ${code}) before its worker started`);
    function fail(why: string) {
      clearTimeout(timer);
      worker.child.off("exit", onExit);
      reject(new Error(`no-op worker process ${worker.pid} ${why}\n${worker.stderr().slice(-2000)}`));
    }
    worker.child.once("exit", onExit);
    worker.child.on("message", (message: { ready?: boolean; firstActive?: number }) => {
      if (message.firstActive !== undefined) firstActive.push(message.firstActive);
      if (message.ready) {
        clearTimeout(timer);
        worker.child.off("exit", onExit);
        resolve(worker);
      }
    });
  });
}

/**
 * `jobs` no-op jobs through `processes` worker processes. The jobs are added
 * to the paused queue before the processes start; the queue is resumed once
 * every process reports its worker started, so start-up is outside the window.
 * The window runs from the earliest first job start any process reports to
 * the newest completion's finishedOn, found by polling the queue's counts
 * every 20 ms until nothing is waiting or active (completions are not
 * counted: the retention keeps only the last 1,000).
 */
export async function noopRun(processes: number, jobs: number, place: RedisPlace, databaseUrl: string): Promise<ScalingFigures> {
  const prefix = benchPrefix();
  const target =
    place.kind === "cluster" ? (redisTarget(loadConfig({ QUEUE_BACKEND: "redis", REDIS_CLUSTER_NODES: place.nodes })) ?? benchRedisUrl) : benchRedisUrl;
  const connection: RedisConnection = createRedis(target, "worker");
  const queue = new Queue(QUEUE, { connection, prefix: bullmqPrefix(connection, prefix, QUEUE) });
  const workers: BenchProcess[] = [];
  try {
    await queue.pause();
    const options = { removeOnComplete: defaultJobOptions.removeOnComplete, removeOnFail: defaultJobOptions.removeOnFail };
    for (let start = 0; start < jobs; start += 1000) {
      await queue.addBulk(Array.from({ length: Math.min(1000, jobs - start) }, (_, i) => ({ name: QUEUE, data: { n: start + i }, opts: options })));
    }
    const env = {
      ...cleared,
      QUEUE_BACKEND: "redis",
      ...(place.kind === "cluster" ? { REDIS_CLUSTER_NODES: place.nodes } : { REDIS_URL: benchRedisUrl }),
      DATABASE_URL: databaseUrl,
      QUEUE_PREFIX: prefix,
      // History's batched INSERTs are PostgreSQL's work, measured in the `history` section; here the queue path alone.
      HISTORY_ENABLED: "false",
      LOG_LEVEL: "info",
    };
    const firstActive: number[] = [];
    const started = await Promise.allSettled(Array.from({ length: processes }, () => startNoopChild(env, firstActive)));
    for (const result of started) if (result.status === "fulfilled") workers.push(result.value);
    const failed = started.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;

    const cpuBefore = summedCpuMs(workers);
    await queue.resume();
    const deadline = Date.now() + 600_000;
    for (;;) {
      const counts = await queue.getJobCounts("wait", "active", "prioritized", "delayed", "failed");
      if (counts.failed) throw new Error(`${counts.failed} no-op jobs failed`);
      const dead = workers.find((worker) => worker.exited());
      if (dead) throw new Error(`no-op worker process ${dead.pid} exited during the run\n${dead.stderr().slice(-2000)}`);
      if (Object.values(counts).every((count) => count === 0)) break;
      if (Date.now() > deadline) throw new Error(`no-op jobs not done within 600 s: ${JSON.stringify(counts)}`);
      await sleep(20);
    }
    const cpuMs = summedCpuMs(workers) - cpuBefore;
    const [last] = await queue.getJobs(["completed"], 0, 0, false);
    if (!last?.finishedOn || firstActive.length === 0) throw new Error("no completed job or no first start reported");
    const ms = last.finishedOn - Math.min(...firstActive);
    return { rate: jobs / (ms / 1000), cpuUs: (cpuMs * 1000) / jobs, ms };
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
    await queue.close();
    // On the cluster the keys go with it (bench/scaling.ts stops it at the end of the section).
    if (place.kind === "single") await benchRun.removeKeys(prefix);
    connection.disconnect();
  }
}

const body = "Hi {{firstName}} {{lastName}}, your spring offer is here: 20% off any treatment this month.";

// Takes $1 count. Inserts that many patients, numbered; returns nothing.
const insertPatientsSql = `
INSERT INTO "patients" ("firstName", "lastName", "email", "phone")
SELECT 'First' || g, 'Last' || g, 'p' || g || '@example.test', '+1555' || lpad(g::text, 7, '0') FROM generate_series(1, $1::int) g`;

// Takes $1 uuid[] patient ids. Gives each an SMS conversation; returns nothing.
const insertConversationsSql = `INSERT INTO "conversations" ("patientId", "channel") SELECT id, 'sms' FROM unnest($1::uuid[]) AS t(id)`;

/**
 * `campaigns` SMS campaigns of `recipients` patients each (their own
 * patients, half with a conversation already, as in the bulk-messaging
 * section), enqueued at once to `processes` `dbjobs worker bulk-messaging`
 * processes (MESSAGING_PROVIDER=noop, the Procfile's node flags) that share
 * one fresh database. The window runs from the first campaign's processedOn
 * to the last one's finishedOn, waited for with QueueEvents.
 */
export async function bulkRun(processes: number, campaigns: number, recipients: number): Promise<ScalingFigures> {
  const url = await freshBenchDatabase(`scaling_bulk_${processes}p`);
  const logger = createLogger({ level: "error" });
  const db = createDb({ url, poolSize: 2, logger });
  const prefix = benchPrefix();
  const workers: BenchProcess[] = [];
  let producer: Producer | undefined;
  let events: QueueEvents | undefined;
  const eventsConnection = createRedis(benchRedisUrl, "worker");
  try {
    await db.pool.query(insertPatientsSql, [campaigns * recipients]);
    const { rows } = await db.pool.query<{ id: string }>(`SELECT "id"::text AS id FROM "patients" ORDER BY "phone"`);
    const ids = rows.map((row) => row.id);
    await db.pool.query(insertConversationsSql, [ids.filter((_, index) => index % 2 === 0)]);
    await db.pool.query(`VACUUM ANALYZE "patients", "conversations"`);

    const env = {
      ...cleared,
      QUEUE_BACKEND: "redis",
      REDIS_URL: benchRedisUrl,
      DATABASE_URL: url,
      QUEUE_PREFIX: prefix,
      MESSAGING_PROVIDER: "noop",
      LOG_LEVEL: "warn",
    };
    for (let i = 0; i < processes; i++) workers.push(spawnCliWorker("bulk-messaging", env));
    producer = new Producer({ redisUrl: benchRedisUrl, prefix });
    const queue = await producer.queue("bulk-messaging");
    events = new QueueEvents("bulk-messaging", { connection: eventsConnection, prefix });
    await events.waitUntilReady();
    // Every process's worker connected (BullMQ lists one client per worker), so start-up stays outside the window.
    for (let waited = 0; (await queue.getWorkersCount()) < processes; waited += 100) {
      const dead = workers.find((worker) => worker.exited());
      if (dead) throw new Error(`a bulk-messaging worker process exited before it started\n${dead.stderr().slice(-2000)}`);
      if (waited > 60_000) throw new Error(`${processes} bulk-messaging worker processes did not all start within 60 s`);
      await sleep(100);
    }

    const cpuBefore = summedCpuMs(workers);
    const jobs = await Promise.all(
      Array.from({ length: campaigns }, (_, c) =>
        (producer as Producer).enqueue("bulk-messaging", {
          campaignId: `scaling-${randomUUID()}`,
          channel: "sms",
          body,
          patientIds: ids.slice(c * recipients, (c + 1) * recipients),
        }),
      ),
    );
    const results = (await Promise.all(jobs.map((job) => job.waitUntilFinished(events as QueueEvents, 600_000)))) as { sent: number }[];
    const cpuMs = summedCpuMs(workers) - cpuBefore;
    if (results.some((result) => result.sent !== recipients)) throw new Error(`a campaign sent fewer than ${recipients}: ${JSON.stringify(results)}`);
    const finished = await Promise.all(jobs.map((job) => queue.getJob(job.id as string)));
    const startMs = Math.min(...finished.map((job) => job?.processedOn ?? Number.NaN));
    const endMs = Math.max(...finished.map((job) => job?.finishedOn ?? Number.NaN));
    const ms = endMs - startMs;
    if (!(ms > 0)) throw new Error("a campaign job has no processedOn or finishedOn");
    const messages = campaigns * recipients;
    return { rate: messages / (ms / 1000), cpuUs: (cpuMs * 1000) / messages, ms };
  } catch (err) {
    throw new Error(
      `bulk messaging with ${processes} processes: ${(err as Error).message}\n${workers.map((worker) => worker.stderr().slice(-1000)).join("\n")}`,
    );
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
    await events?.close();
    eventsConnection.disconnect();
    await producer?.close();
    await benchRun.removeKeys(prefix);
    await db.close();
    await benchRun.dropDatabase(url);
  }
}
