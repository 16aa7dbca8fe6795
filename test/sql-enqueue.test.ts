import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { defaultStoredOptions } from "../src/queues/bullmq-job.js";
import { contracts, queueNames } from "../src/queues/contracts.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { runCli } from "./support/spawn-cli.js";
import { memoryLogger, testConfig, testQueueBackend, useTestDb } from "./support/test-env.js";
import { openTransactionalQueues, storedOptions, type TransactionalQueues } from "./support/transactional-queues.js";
import { waitFor } from "./support/wait-for.js";

const run = promisify(execFile);
const psqlAvailable = await run("psql", ["--version"]).then(
  () => true,
  () => false,
);

/**
 * dbjobs.enqueue(queue text, payload jsonb) returns text: producers in any
 * language enqueue from SQL, inside their own transaction. What it knows of
 * the queues comes from the contracts, written by `dbjobs migrate`.
 */
describe(`dbjobs.enqueue from SQL (${testQueueBackend()} backend)`, () => {
  const testDatabase = useTestDb();
  let config: Config;
  let queues: TransactionalQueues;
  let worker: RunningWorker;

  const sqlEnqueue = async (queue: string, payload: unknown): Promise<string> => {
    const client = await testDatabase.db.pool.connect();
    try {
      await client.query("BEGIN");
      const { rows } = await client.query<{ id: string }>("SELECT dbjobs.enqueue($1, $2::jsonb) AS id", [queue, JSON.stringify(payload)]);
      await client.query("COMMIT");
      return rows[0]?.id as string;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  };
  const finishedJob = (id: string) =>
    waitFor(
      `job ${id} to finish`,
      async () => {
        const job = (await queues.jobs("invoice-totals")).find((candidate) => candidate.id === id);
        return job?.finishedOn ? job : undefined;
      },
      60_000,
    ) as Promise<Job>;

  beforeAll(async () => {
    config = testConfig(testDatabase.url);
    // The real path: `dbjobs migrate` writes the queue catalog and the backend the function reads.
    const migrated = await runCli(["migrate"], {
      DATABASE_URL: testDatabase.url,
      QUEUE_BACKEND: config.QUEUE_BACKEND,
      REDIS_URL: config.REDIS_URL ?? "",
      LOG_LEVEL: "warn",
    });
    expect(migrated.stdout).toContain(`dbjobs.enqueue knows ${contracts.length} queues, on ${config.QUEUE_BACKEND}`);
    queues = await openTransactionalQueues(config, testDatabase.db.pool);
    worker = await startWorker("invoice-totals", { config, logger: memoryLogger("warn").logger, db: testDatabase.db });
  });

  afterAll(async () => {
    await worker?.close();
    await queues?.close();
  });

  it("`dbjobs migrate` writes every contract's queue and default job options, and the backend, into the catalog", async () => {
    const { rows } = await testDatabase.db.pool.query<{ name: string; job_options: unknown }>(
      `SELECT "name", "job_options" FROM "dbjobs"."queues" ORDER BY "position"`,
    );
    expect(rows.map((row) => row.name)).toEqual(queueNames);
    for (const contract of contracts) {
      expect(rows.find((row) => row.name === contract.name)?.job_options).toEqual(await defaultStoredOptions(contract.name, contract.jobOptions));
    }
    const { rows: backend } = await testDatabase.db.pool.query<{ backend: string }>(`SELECT "backend" FROM "dbjobs"."queue_backend"`);
    expect(backend).toEqual([{ backend: config.QUEUE_BACKEND }]);
  });

  it("enqueues a job that runs, with the options Queue.add gives a job of that queue, and returns its id", async () => {
    const id = await sqlEnqueue("invoice-totals", { all: true });
    const viaAdd = await queues.producer.enqueue("invoice-totals", { all: true });
    const job = await finishedJob(id);
    const added = await finishedJob(viaAdd.id as string);

    expect(await job.getState()).toBe("completed");
    expect(job.name).toBe("invoice-totals");
    expect(job.data).toEqual({ all: true });
    expect(storedOptions(job)).toEqual(storedOptions(added));
    expect(storedOptions(job)).toMatchObject({ attempts: 5, backoff: { type: "exponential", delay: 1000 } });
  });

  it("a rolled-back transaction enqueues nothing", async () => {
    const client = await testDatabase.db.pool.connect();
    let id: string | undefined;
    try {
      await client.query("BEGIN");
      const { rows } = await client.query<{ id: string }>(`SELECT dbjobs.enqueue('invoice-totals', '{"changedSince": "2026-01-01T00:00:00Z"}') AS id`);
      id = rows[0]?.id;
      await client.query("ROLLBACK");
    } finally {
      client.release();
    }
    await queues.settled();
    const jobs = await queues.jobs("invoice-totals");
    expect(id).toBeTruthy();
    expect(jobs.filter((job) => job.id === id || job.data.changedSince === "2026-01-01T00:00:00Z")).toEqual([]);
  });

  it("an unknown queue raises an error naming the known ones", async () => {
    await expect(sqlEnqueue("invoice-total", { all: true })).rejects.toThrow(`Unknown queue "invoice-total". Known queues: ${queueNames.join(", ")}.`);
    // SQL NULL, not JSON null (which the worker rejects like any payload that is not an object).
    await expect(testDatabase.db.pool.query("SELECT dbjobs.enqueue('invoice-totals', NULL)")).rejects.toThrow("dbjobs.enqueue: payload is null");
  });

  it("a bad payload reaches the worker and fails once, without retries, naming the field", async () => {
    const id = await sqlEnqueue("invoice-totals", { invoiceIds: ["not-an-id"] });
    const job = await finishedJob(id);

    expect(await job.getState()).toBe("failed");
    expect(job.attemptsMade).toBe(1);
    expect(job.opts.attempts).toBe(5);
    expect(job.failedReason).toContain("invoiceIds.0: must be an invoice id (uuid)");
  });

  it.skipIf(!psqlAvailable)("works from psql, as docs/operating.md shows", async () => {
    // The example of docs/operating.md, in its own transaction.
    const { stdout } = await run("psql", [
      testDatabase.url,
      "--no-psqlrc",
      "--tuples-only",
      "--no-align",
      "--quiet",
      "--command",
      "BEGIN",
      "--command",
      `SELECT dbjobs.enqueue('invoice-totals', '{"all": true}')`,
      "--command",
      "COMMIT",
    ]);
    const id = stdout.trim();
    expect(id).toMatch(/^\S+$/);
    expect(await (await finishedJob(id)).getState()).toBe("completed");
  });
});
