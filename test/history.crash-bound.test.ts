import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { Producer } from "../src/queues/producer.js";
import { type CliRun, cliEnv, spawnCli } from "./support/spawn-cli.js";
import { testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * What a crash can cost the job history: the rows not yet flushed. The flush
 * timer is set far out, so only a full batch (and what waits when it is
 * written) and the shutdown flush write: a SIGKILL after the flushes loses
 * at most the tail of fewer than HISTORY_BATCH_SIZE rows, and a SIGTERM none.
 */
const BATCH = 20;
const QUEUE = "invoice-totals";

describe("job history across a worker crash and a clean stop", () => {
  const testDatabase = useTestDb();
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  const config = () => testConfig(testDatabase.url);
  const historyCount = async () =>
    (await testDatabase.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "dbjobs"."job_history_jobs" WHERE "queue" = $1`, [QUEUE])).rows[0]?.n ?? 0;

  async function startWorkerProcess(env: Record<string, string>): Promise<CliRun> {
    const worker = spawnCli(["worker", QUEUE], env);
    cleanups.push(async () => {
      if (worker.child.exitCode === null) worker.child.kill("SIGKILL");
    });
    await worker.waitForOutput(/worker started/, 60_000);
    return worker;
  }

  async function enqueueAndFinish(producer: Producer, count: number, completedBefore: number): Promise<void> {
    // Invoices that do not exist: each job completes at once, having updated nothing.
    for (let index = 0; index < count; index++) await producer.enqueue(QUEUE, { invoiceIds: [randomUUID()] });
    const queue = await producer.queue(QUEUE);
    await waitFor(`${count} jobs to complete`, async () => (await queue.getJobCounts("completed")).completed === completedBefore + count, 60_000);
  }

  it("SIGKILL loses at most the unflushed batch; after a restart a SIGTERM loses nothing", async () => {
    const settings = config();
    const producer = Producer.fromConfig(settings);
    cleanups.push(async () => {
      await (await producer.queue(QUEUE)).obliterate({ force: true });
      await producer.close();
    });
    const env = cliEnv(settings, { HISTORY_FLUSH_MS: "600000", HISTORY_BATCH_SIZE: String(BATCH) });

    const first = await startWorkerProcess(env);
    const jobs = 2 * BATCH + 7;
    await enqueueAndFinish(producer, jobs, 0);
    await waitFor("the two full batches to be flushed", async () => (await historyCount()) >= 2 * BATCH);
    first.child.kill("SIGKILL");
    await first.exited;
    const afterCrash = await historyCount();
    // Every flushed row survived the kill; what is missing is the unflushed tail, never more than a batch.
    expect(afterCrash).toBeGreaterThanOrEqual(2 * BATCH);
    expect(afterCrash).toBeLessThanOrEqual(jobs);
    expect(jobs - afterCrash).toBeLessThan(BATCH);

    const second = await startWorkerProcess(env);
    await enqueueAndFinish(producer, 7, jobs);
    // Fewer than a batch and a timer far away: only the shutdown flush can write these.
    expect(await historyCount()).toBe(afterCrash);
    second.child.kill("SIGTERM");
    const { code } = await second.exited;
    expect(code).toBe(0);
    expect(await historyCount()).toBe(afterCrash + 7);
    const { rows } = await testDatabase.db.pool.query<{ n: number }>(
      `SELECT count(DISTINCT "job_id")::int AS n FROM "dbjobs"."job_history_jobs" WHERE "queue" = $1 AND "state" = 'completed'`,
      [QUEUE],
    );
    expect(rows[0]?.n).toBe(afterCrash + 7);
  });
});
