import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { cancelJob } from "../src/queues/cancel-job.js";
import { Producer } from "../src/queues/producer.js";
import { seedArchivableMonth } from "./support/archive-data.js";
import { type CliRun, cliEnv, spawnCli } from "./support/spawn-cli.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";
import { someoneWaitsOn, waitFor } from "./support/wait-for.js";

// Rows, distinct ids and money over live ∪ archive, and an order-independent hash of every row.
const totalsSql = `
SELECT count(*)::int AS rows, count(DISTINCT id)::int AS ids, sum(amount)::text AS amount, sum(hashtextextended(r::text, 0))::text AS hash
  FROM (SELECT * FROM transactions UNION ALL SELECT * FROM transactions_archive) r`;

/**
 * An archiving job cancelled while its batch statement (DELETE … RETURNING →
 * INSERT) is running: the test holds a SHARE lock on transactions_archive, so
 * the batch has deleted its rows and waits to insert them when the cancel
 * comes. The worker cancels that backend's statement, the batch rolls back,
 * and the job ends failed as cancelled, not retried, within a second.
 */
describe("cancel: an archiving job stopped in the middle of a batch statement", () => {
  let database: TestDatabase;
  let client: pg.Client;
  let config: Config;
  let worker: CliRun | undefined;
  const eligible = 40_000;

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await seedArchivableMonth(client, { rows: eligible, pendingEvery: 1001, keyPrefix: "cancel" });
    await client.query("ANALYZE transactions");
  });
  afterAll(async () => {
    if (worker && worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
    await worker?.exited;
    await client.end();
    await database.drop();
  });

  it("rolls the batch back, changes no total, and ends cancelled within 1 s without a retry", { timeout: 180_000 }, async () => {
    const before = (await client.query(totalsSql)).rows[0];
    const archived = async () => (await client.query<{ n: number }>("SELECT count(*)::int AS n FROM transactions_archive")).rows[0]?.n ?? 0;
    worker = spawnCli(["worker", "archiving"], cliEnv(config));
    const producer = Producer.fromConfig(config);
    const blocker = new pg.Client({ connectionString: database.url });
    await blocker.connect();
    try {
      await worker.waitForOutput(/worker started/, 90_000);
      const job = await producer.enqueue("archiving", { batchSize: 5000 });
      await worker.waitForOutput(/archiving batch moved/, 90_000);

      // The next batch statement deletes its rows, then waits on this lock to insert them.
      const blockerPid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid as number;
      await blocker.query("BEGIN");
      await blocker.query("LOCK TABLE transactions_archive IN SHARE MODE");
      await waitFor("the batch statement to wait on the test's lock", () => someoneWaitsOn(blockerPid, (sql, values) => client.query(sql, values)), 60_000);
      const archivedBeforeCancel = await archived();
      expect(archivedBeforeCancel).toBeGreaterThan(0);
      expect(await job.getState()).toBe("active");

      const started = performance.now();
      const outcome = await cancelJob({
        store: producer.store,
        connectTimeoutMs: config.QUEUE_CONNECT_TIMEOUT_MS,
        logger: memoryLogger("warn").logger,
        queue: "archiving",
        jobId: String(job.id),
        actor: "test",
        via: "cli",
      });
      const elapsedMs = performance.now() - started;
      expect(outcome.outcome).toBe("cancelled");
      expect(elapsedMs).toBeLessThan(1000);
      // The statement was stopped, not left waiting: nobody waits on the lock any more, though it is still held.
      expect(await someoneWaitsOn(blockerPid, (sql, values) => client.query(sql, values))).toBe(false);
      await blocker.query("ROLLBACK");

      expect(await archived()).toBe(archivedBeforeCancel);
      expect((await client.query(totalsSql)).rows[0]).toEqual(before);

      const failed = await (await producer.queue("archiving")).getJob(String(job.id));
      expect(failed?.failedReason).toMatch(/^cancelled: by test \(cli\); committed before the cancel: \{"phase":"batches","moved":\d+/);
      expect(failed?.attemptsMade).toBe(1);
      // Not retried: still failed a moment later, and no batch moved since.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await failed?.getState()).toBe("failed");
      expect(await archived()).toBe(archivedBeforeCancel);
    } finally {
      await blocker.end().catch(() => undefined);
      await producer.close();
    }
  });
});
