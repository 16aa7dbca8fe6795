import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ArchivingResult } from "../src/jobs/archiving/contract.js";
import type { Config } from "../src/lib/config.js";
import { Producer } from "../src/queues/producer.js";
import { startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { seedArchivableMonth } from "./support/archive-data.js";
import { cliEnv, spawnCli } from "./support/spawn-cli.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";
import { waitForSessionsToEnd } from "./support/wait-for.js";

// Order-independent checksum of live ∪ archive: row count, distinct ids, and the sum of a hash of every row's text.
const checksumSql = `
SELECT count(*)::int AS rows, count(DISTINCT id)::int AS ids, sum(hashtextextended(r::text, 0))::text AS hash
  FROM (SELECT * FROM transactions UNION ALL SELECT * FROM transactions_archive) r`;

describe("archiving survives a worker killed with SIGKILL mid-run", () => {
  let database: TestDatabase;
  let client: pg.Client;
  let config: Config;
  const eligible = 60_000;

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
    // Every 1001st is PENDING: 60,060 rows, 60,000 eligible.
    await seedArchivableMonth(client, { rows: eligible + eligible / 1000, pendingEvery: 1001, keyPrefix: "crash" });
    await client.query("ANALYZE transactions");
  });
  afterAll(async () => {
    await client.end();
    await database.drop();
  });

  it("loses and doubles nothing, and a rerun finishes the job with an equal checksum", async () => {
    const before = (await client.query(checksumSql)).rows[0];
    const archivedCount = async () => (await client.query<{ n: number }>("SELECT count(*)::int AS n FROM transactions_archive")).rows[0]?.n ?? 0;

    const worker = spawnCli(["worker", "archiving"], cliEnv(config));
    const producer = Producer.fromConfig(config);
    try {
      await worker.waitForOutput(/worker started/, 60_000);
      await producer.enqueue("archiving", { batchSize: 100 });
      await worker.waitForOutput(/archiving batch moved/, 60_000);
      for (let waited = 0; (await archivedCount()) < 3000 && waited < 60_000; waited += 20) await sleep(20);
      worker.child.kill("SIGKILL");
      expect((await worker.exited).signal).toBe("SIGKILL");
      // A batch's COMMIT sent just before the kill still commits; count only once the dead worker's sessions are gone.
      await waitForSessionsToEnd("dbjobs:archiving", (sql, values) => client.query(sql, values));

      // Mid-way: some rows archived, some still live, none lost or doubled.
      const atKill = await archivedCount();
      expect(atKill).toBeGreaterThan(0);
      expect(atKill).toBeLessThan(eligible);
      expect((await client.query(checksumSql)).rows[0]).toEqual(before);

      // The killed job stays "active" until BullMQ's stall check; clear it so the rerun is the only run.
      await (await producer.queue("archiving")).obliterate({ force: true });
      const { logger } = memoryLogger("warn");
      const rerun = await startWorker("archiving", { config, logger });
      const events = await producer.store.queueEvents("archiving");
      try {
        await events.waitUntilReady();
        const job = await producer.enqueue("archiving", { batchSize: 5000 });
        const result = (await waitForJob(job, events, 120_000)) as ArchivingResult;
        expect(result.verified).toBe(true);
        expect(result.moved).toBe(eligible - atKill);
      } finally {
        await events.close();
        await rerun.close();
      }
    } finally {
      if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
      await producer.close();
    }

    expect((await client.query(checksumSql)).rows[0]).toEqual(before);
    expect(await archivedCount()).toBe(eligible);
    const { rows } = await client.query<{ dup: number }>(
      "SELECT count(*)::int AS dup FROM (SELECT id FROM transactions UNION ALL SELECT id FROM transactions_archive) r GROUP BY id HAVING count(*) > 1",
    );
    expect(rows).toEqual([]);
  });
});
