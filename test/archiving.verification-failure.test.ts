import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { archiveCutoff } from "../src/jobs/archiving/plan.js";
import type { Config } from "../src/lib/config.js";
import { createPartition } from "../src/partitions/create-partition.js";
import { addUtcMonths, utcMonthStart } from "../src/partitions/month-bounds.js";
import { Producer } from "../src/queues/producer.js";
import { startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";

describe("archiving fails loudly when its check fails", () => {
  let database: TestDatabase;
  let client: pg.Client;
  let config: Config;

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const month = addUtcMonths(utcMonthStart(archiveCutoff(new Date(), 7)), -3);
    await createPartition(client, "transactions", month);
    await client.query(
      `INSERT INTO transactions (type, status, amount, "createdAt")
       SELECT 'DEPOSIT', CASE WHEN g = 1 THEN 'PENDING' ELSE 'COMPLETED' END::"TransactionStatus",
              CASE WHEN g = 451 THEN 555.55 ELSE 1 END, $1::timestamptz + g * interval '1 minute'
         FROM generate_series(1, 1001) g`,
      [month],
    );
    // Something that silently swallows one archived row: the kind of fault verification exists for.
    await client.query(`
      CREATE FUNCTION swallow_row() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.amount = 555.55 THEN RETURN NULL; END IF; RETURN NEW; END $$;
      CREATE TRIGGER swallow BEFORE INSERT ON transactions_archive FOR EACH ROW EXECUTE FUNCTION swallow_row();`);
  });
  afterAll(async () => {
    await client.end();
    await database.drop();
  });

  it("fails the job without retries, names the problem, loses no row and runs no more batches", async () => {
    const producer = Producer.fromConfig(config);
    const memory = memoryLogger("info");
    const worker = await startWorker("archiving", { config, logger: memory.logger });
    const events = await producer.store.queueEvents("archiving");
    try {
      await events.waitUntilReady();
      const job = await producer.enqueue("archiving", { batchSize: 100 });
      await expect(waitForJob(job, events, 60_000)).rejects.toThrow(/Archive verification failed in batch 5, which deleted 100 rows but archived 99/);
      const failed = await (await producer.queue("archiving")).getJob(job.id as string);
      expect(await failed?.getState()).toBe("failed");
      expect(failed?.attemptsMade).toBe(1);
      expect(memory.lines().some((line) => line.level === 50 && String(line.msg).includes("Archive verification failed"))).toBe(true);
    } finally {
      await events.close();
      await worker.close();
      await producer.close();
    }
    const { rows } = await client.query<{ live: number; archived: number }>(
      "SELECT (SELECT count(*) FROM transactions)::int AS live, (SELECT count(*) FROM transactions_archive)::int AS archived",
    );
    // Four batches of 100 went through; the fifth was rolled back and no sixth ran.
    expect(rows[0]).toEqual({ live: 601, archived: 400 });
  });
});
