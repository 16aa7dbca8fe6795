import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { Producer } from "../src/queues/producer.js";
import { startWorker } from "../src/queues/start-worker.js";
import { seedArchivableMonth } from "./support/archive-data.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";
import { someoneWaitsOn, waitFor } from "./support/wait-for.js";

const totalsSql = `
SELECT count(*)::int AS rows, sum(amount)::text AS amount
  FROM (SELECT * FROM transactions UNION ALL SELECT * FROM transactions_archive) r`;

/**
 * A job enqueued with `--deadline-ms` that cannot finish in time (its
 * statement waits on a lock the test holds): at the deadline the runtime
 * cancels the statement, the attempt fails with JOB_DEADLINE, and, the error
 * being retryable, the next attempt runs and completes once the lock is gone.
 */
describe("deadline: a job stopped when its deadlineMs passes", () => {
  let database: TestDatabase;
  let client: pg.Client;
  let config: Config;

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await seedArchivableMonth(client, { rows: 2000, pendingEvery: 101, keyPrefix: "deadline" });
  });
  afterAll(async () => {
    await client.end();
    await database.drop();
  });

  it("cancels the statement at the deadline, fails the attempt with JOB_DEADLINE, and the retry completes", { timeout: 120_000 }, async () => {
    const before = (await client.query(totalsSql)).rows[0];
    const producer = Producer.fromConfig(config);
    const worker = await startWorker("archiving", { config, logger: memoryLogger("warn").logger });
    const blocker = new pg.Client({ connectionString: database.url });
    await blocker.connect();
    try {
      const blockerPid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid as number;
      const waitsOnBlocker = () => someoneWaitsOn(blockerPid, (sql, values) => client.query(sql, values));
      await blocker.query("BEGIN");
      await blocker.query("LOCK TABLE transactions_archive IN SHARE MODE");

      const enqueued = await runCli(["enqueue", "archiving", "--data", '{"batchSize":500}', "--deadline-ms", "1500", "--json"], cliEnv(config));
      expect(enqueued.code).toBe(0);
      const jobId = (JSON.parse(enqueued.stdout) as { jobId: string }).jobId;
      const queue = await producer.queue("archiving");
      const job = await waitFor("the job to exist", async () => queue.getJob(jobId));
      expect(job.opts).toMatchObject({ deadlineMs: 1500 });

      await waitFor("the job's statement to wait on the test's lock", waitsOnBlocker, 30_000);
      const firstAttempt = await waitFor(
        "the first attempt to fail at its deadline",
        async () => {
          const current = await queue.getJob(jobId);
          return current && current.attemptsMade >= 1 ? current : undefined;
        },
        30_000,
      );
      expect(firstAttempt.failedReason).toMatch(/^deadline: the job ran longer than its deadlineMs \(1500 ms\) and was stopped/);
      // Retryable: not failed for good, its retry is scheduled; and the stopped attempt changed nothing.
      expect(await firstAttempt.getState()).not.toBe("failed");
      expect((await client.query(totalsSql)).rows[0]).toEqual(before);

      await blocker.query("ROLLBACK");
      await waitFor("the retry to complete", async () => (await queue.getJob(jobId).then((current) => current?.getState())) === "completed", 60_000);
      const done = await queue.getJob(jobId);
      expect(done?.attemptsMade).toBeGreaterThanOrEqual(2);
      expect(done?.returnvalue).toMatchObject({ verified: true });
      expect((await client.query(totalsSql)).rows[0]).toEqual(before);
    } finally {
      await blocker.end().catch(() => undefined);
      await worker.close();
      await producer.close();
    }
  });
});
