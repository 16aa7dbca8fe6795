import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { loadConfig } from "../src/lib/config.js";
import { createLogger } from "../src/lib/logger.js";
import { migrateQueueDatabase } from "../src/lib/migrate.js";
import { cancelJob } from "../src/queues/cancel-job.js";
import { getContract } from "../src/queues/contracts.js";
import type { JobHandler } from "../src/queues/job-context.js";
import { Producer } from "../src/queues/producer.js";
import { startWorker } from "../src/queues/start-worker.js";
import type { BenchRow, BenchSection } from "./bench-section.js";
import { benchPrefix, benchRedisUrl, freshBenchDatabase } from "./support.js";

/**
 * Cancel latency, request → statement stopped (issue 19's goal: p99 under
 * 500 ms), on each queue backend. A worker runs a job whose one statement
 * would sleep for a minute on a session from `context.db.pool`; once
 * pg_stat_activity shows it running, the clock starts and `cancelJob` (what
 * `dbjobs cancel` and the HTTP route call) sends the request; the clock stops
 * when another connection sees that backend no longer running it. The whole
 * path is timed: the job looked up, the control message through Redis or
 * PostgreSQL NOTIFY, the worker's abort, pg_cancel_backend. A second figure
 * times the request until the job is failed as cancelled.
 */
const ROUNDS = Number(process.env.BENCH_CANCEL_ROUNDS ?? 40);
const QUEUE = "db-maintenance";
const MARK = "dbjobs-bench-cancel";

const sleeper: JobHandler<ReturnType<typeof getContract>> = async (_payload, { db }) => {
  await db.pool.query(`SELECT pg_sleep(60) AS "${MARK}"`);
  return undefined as never;
};

// Takes $1 the marker. Backends running the sleeper's statement.
const runningSql = `SELECT count(*)::int AS running FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`;

/** Polls `check` until it is true; throws after 30 s instead of hanging the bench. */
async function until(what: string, check: () => Promise<boolean>, intervalMs: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`cancel-latency: gave up waiting for ${what}`);
    await sleep(intervalMs);
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function measure(backend: "redis" | "postgres"): Promise<{ stopped: number[]; failed: number[] }> {
  const url = await freshBenchDatabase(`cancel_${backend}`);
  if (backend === "postgres") await migrateQueueDatabase(url);
  const config = loadConfig({ DATABASE_URL: url, QUEUE_BACKEND: backend, REDIS_URL: benchRedisUrl, QUEUE_PREFIX: benchPrefix(), LOG_LEVEL: "warn" });
  // Every round ends in a "job failed" warning by design; only errors are news here.
  const logger = createLogger({ level: "error" });
  const worker = await startWorker(QUEUE, { config, logger, job: { contract: getContract(QUEUE), handler: sleeper } });
  const producer = Producer.fromConfig(config);
  const monitor = new pg.Client({ connectionString: url });
  await monitor.connect();
  const running = async () => ((await monitor.query<{ running: number }>(runningSql, [MARK])).rows[0]?.running ?? 0) > 0;
  const stopped: number[] = [];
  const failed: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const job = await producer.enqueue(QUEUE, {});
      await until("the job's statement to run", running, 5);
      const started = performance.now();
      const cancelling = cancelJob({
        store: producer.store,
        connectTimeoutMs: config.QUEUE_CONNECT_TIMEOUT_MS,
        logger,
        queue: QUEUE,
        jobId: String(job.id),
        actor: "bench",
        via: "cli",
      });
      await until("the statement to stop", async () => !(await running()), 2);
      stopped.push(performance.now() - started);
      const outcome = await cancelling;
      if (outcome.outcome !== "cancelled") throw new Error(`round ${round}: the job ended ${outcome.outcome}, not cancelled`);
      failed.push(performance.now() - started);
    }
  } finally {
    await monitor.end();
    await producer.close();
    await worker.close();
  }
  return { stopped, failed };
}

export const cancelLatencyBench: BenchSection = {
  name: "cancel-latency",
  async run() {
    const rows: BenchRow[] = [];
    for (const backend of ["redis", "postgres"] as const) {
      const { stopped, failed } = await measure(backend);
      for (const [what, samples] of [
        ["statement stopped", stopped],
        ["job failed as cancelled", failed],
      ] as const) {
        const sorted = [...samples].sort((a, b) => a - b);
        const p99 = Math.round(percentile(sorted, 99));
        rows.push({
          name: `cancel on ${backend}: request → ${what} (p99; range is min..max)`,
          value: p99,
          unit: "ms",
          valueRange: { min: Math.round(sorted[0] as number), max: Math.round(sorted[sorted.length - 1] as number), runs: sorted.length },
          ...(what === "statement stopped" ? { goal: "p99 < 500 ms", met: p99 < 500 } : {}),
        });
      }
    }
    return rows;
  },
};
