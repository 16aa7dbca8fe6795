import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { Producer } from "../src/queues/producer.js";
import { type InvoiceSpec, insertInvoices, randomInvoices, readInvoices, seededRandom, totalsMismatches } from "./support/invoice-data.js";
import { type PrivateRedis, startPrivateRedis } from "./support/private-redis.js";
import { type CliRun, cliEnv, spawnCli } from "./support/spawn-cli.js";
import { testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * Redis dies under load and comes back on the same port with its data (the
 * test's own redis-server, append-only file fsynced on every write). Two real
 * worker processes must reconnect by themselves and finish every job; the
 * producer must fail fast while Redis is down instead of hanging its caller.
 */
describe("resilience: Redis restarted under load", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let redis: PrivateRedis;
  let config: Config;
  let producer: Producer;
  let invoices: InvoiceSpec[];
  const workers: CliRun[] = [];

  beforeAll(async () => {
    db = testDatabase.db;
    invoices = randomInvoices(140, seededRandom(808), { maxLines: 12 });
    await insertInvoices(db.pool, invoices);
    redis = await startPrivateRedis();
    config = testConfig(testDatabase.url, { REDIS_URL: redis.url });
    producer = new Producer({ redisUrl: redis.url, prefix: config.QUEUE_PREFIX });
  });

  afterAll(async () => {
    for (const worker of workers) if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
    await Promise.all(workers.map((worker) => worker.exited));
    await producer?.close();
    await redis?.stop();
  });

  const completedCount = async () => (await (await producer.queue("invoice-totals")).getJobCounts("completed")).completed ?? 0;

  it("workers reconnect and every enqueued job completes; the producer fails fast meanwhile", async () => {
    for (let index = 0; index < 2; index++) workers.push(spawnCli(["worker", "invoice-totals", "--concurrency", "2"], cliEnv(config, { LOG_LEVEL: "debug" })));
    await Promise.all(workers.map((worker) => worker.waitForOutput(/worker started/, 90_000)));

    const before = invoices.slice(0, 60);
    const after = invoices.slice(60);
    for (const invoice of before) await producer.enqueue("invoice-totals", { invoiceIds: [invoice.id] });
    await waitFor("some jobs to complete before the outage", async () => (await completedCount()) >= 5, 60_000);

    const outputAtKill = workers.map((worker) => worker.stderr().length);
    await redis.kill();
    const startedAt = Date.now();
    const outcome = await Promise.race([
      producer.enqueue("invoice-totals", { invoiceIds: [after[0]?.id as string] }).then(
        () => "enqueued",
        (err: Error) => `rejected: ${err.message}`,
      ),
      sleep(15_000).then(() => "still waiting"),
    ]);
    expect(outcome).toMatch(/^rejected: /);
    const failedAfterMs = Date.now() - startedAt;
    await sleep(2000);

    await redis.start();
    const outputAtRestart = workers.map((worker) => worker.stderr().length);
    // The producer reconnects by itself; wait until it is ready again.
    await waitFor(
      "the producer to reconnect",
      async () =>
        (await (await producer.queue("invoice-totals")).getJobCounts().then(
          () => true,
          () => false,
        )) || undefined,
      30_000,
      200,
    );
    // Each worker reconnects on its own backoff schedule, so one may be back seconds before the other and
    // would take every job enqueued meanwhile. Wait until both are back (main connection restored, blocking
    // connection waiting for jobs again) before the jobs that both must share.
    await waitFor(
      "both workers to reconnect",
      async () =>
        workers.every((worker, index) => /Redis connection restored/.test(worker.stderr().slice(outputAtKill[index]))) &&
        (await (await producer.queue("invoice-totals")).getWorkers().then(
          (connected: unknown[]) => connected.length >= workers.length,
          () => false,
        )),
      60_000,
      100,
    );
    for (const invoice of after) await producer.enqueue("invoice-totals", { invoiceIds: [invoice.id] });

    // Jobs in flight when Redis died finish again once their lock expires (stalled-job recovery), hence the long wait.
    await waitFor("every job to complete", async () => (await completedCount()) >= invoices.length, 180_000, 500);
    const counts = await (await producer.queue("invoice-totals")).getJobCounts("completed", "failed", "waiting", "active", "delayed");
    expect(counts).toMatchObject({ completed: invoices.length, failed: 0, waiting: 0, active: 0, delayed: 0 });
    expect(totalsMismatches(await readInvoices(db.pool))).toEqual([]);

    // Both workers lived through the outage and took jobs after it.
    for (const [index, worker] of workers.entries()) {
      expect(worker.child.exitCode).toBeNull();
      expect(worker.stderr().slice(outputAtRestart[index])).toMatch(/"msg":"job completed"/);
    }
    // Not a timing assertion: "fast" means it did not wait for Redis to come back.
    expect(failedAfterMs).toBeLessThan(15_000);
  }, 400_000);
});
