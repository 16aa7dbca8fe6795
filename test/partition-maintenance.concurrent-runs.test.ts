import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PartitionMaintenanceResult } from "../src/jobs/partition-maintenance/contract.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { PayloadValidationError } from "../src/lib/errors.js";
import { createPartition } from "../src/partitions/create-partition.js";
import { addUtcMonths, monthPartitionName, utcMonthStart } from "../src/partitions/month-bounds.js";
import type { JobContext } from "../src/queues/job-context.js";
import { Producer } from "../src/queues/producer.js";
import { startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { workerServices } from "../src/queues/worker-services.js";
import { runHandler } from "./support/direct-job-context.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig, testDb } from "./support/test-env.js";

function directContext(db: Db, config: Config): JobContext {
  return {
    job: { id: "direct" } as JobContext["job"],
    log: memoryLogger("warn").logger,
    db,
    signal: new AbortController().signal,
    redis: undefined as never,
    config,
    prefix: "direct",
    services: workerServices(config),
    invalidateCache: async () => undefined,
    reportProgress: async () => undefined,
    postpone: async () => {
      throw new Error("not in a worker");
    },
    waitingJobs: async () => 0,
  };
}

describe("partition-maintenance runs side by side and from the queue", () => {
  let database: TestDatabase;
  let config: Config;
  let dbA: Db;
  let dbB: Db;
  let client: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
    dbA = testDb(database.url);
    dbB = testDb(database.url);
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
  });
  afterAll(async () => {
    await client.end();
    await dbA.close();
    await dbB.close();
    await database.drop();
  });

  const partitionCount = async () =>
    (await client.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'transactions'::regclass")).rows[0]?.n;

  it("two runs at the same moment both succeed or one skips, without deadlock, and make each partition once", async () => {
    // Rows in the default for a month both runs will create: the slow, locking branch.
    const month = addUtcMonths(utcMonthStart(new Date()), 4);
    await client.query(
      `INSERT INTO transactions (type, amount, "createdAt") SELECT 'FEE', 1, $1::timestamptz + g * interval '1 minute' FROM generate_series(1, 500) g`,
      [month],
    );
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all([
        runHandler("partition-maintenance", { monthsAhead: 6 + round }, directContext(dbA, config)),
        runHandler("partition-maintenance", { monthsAhead: 6 + round }, directContext(dbB, config)),
      ]);
      for (const result of results) {
        if (result.skipped) expect(result.skipped).toBe("another run holds the lock");
      }
      const created = results.flatMap((result) => result.created);
      expect(new Set(created).size).toBe(created.length);
    }
    expect(await partitionCount()).toBe(1 + 9); // default + current month + 8 ahead
    const { rows } = await client.query<{ partition: string; n: number }>(
      "SELECT tableoid::regclass::text AS partition, count(*)::int AS n FROM transactions GROUP BY 1",
    );
    expect(rows).toEqual([{ partition: monthPartitionName("transactions", month), n: 500 }]);
  });

  it("creates each partition once even when two sessions race past the advisory lock", async () => {
    const other = new pg.Client({ connectionString: database.url });
    await other.connect();
    try {
      const months = [20, 21, 22].map((offset) => addUtcMonths(utcMonthStart(new Date()), offset));
      await client.query(
        `INSERT INTO transactions (type, amount, "createdAt") SELECT 'FEE', 2, $1::timestamptz + g * interval '1 hour' FROM generate_series(1, 50) g`,
        [months[1]],
      );
      // One connection runs one transaction at a time, so each session goes through the months in turn.
      const race = async (session: pg.Client) => {
        const outcomes = [];
        for (const month of months) outcomes.push(await createPartition(session, "transactions", month));
        return outcomes;
      };
      const [first, second] = await Promise.all([race(client), race(other)]);
      const outcomes = [...first, ...second];
      expect(
        outcomes
          .filter((outcome) => outcome.created)
          .map((outcome) => outcome.name)
          .sort(),
      ).toEqual(months.map((month) => monthPartitionName("transactions", month)));
      expect(outcomes.reduce((sum, outcome) => sum + outcome.movedFromDefault, 0)).toBe(50);
      // Clean up so the later tests see the expected partitions.
      for (const month of months) await client.query(`DROP TABLE "${monthPartitionName("transactions", month)}"`);
    } finally {
      await other.end();
    }
  });

  it("skips with a clear reason while another session holds the lock", async () => {
    const holder = new pg.Client({ connectionString: database.url });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock(hashtextextended('dbjobs:partition-maintenance:transactions', 0))");
      const result = await runHandler("partition-maintenance", { monthsAhead: 12 }, directContext(dbA, config));
      expect(result).toMatchObject({ created: [], movedFromDefault: 0, skipped: "another run holds the lock" });
      expect(await partitionCount()).toBe(10);
    } finally {
      await holder.end();
    }
  });

  it("runs from the queue through a worker and returns its result", async () => {
    const producer = Producer.fromConfig(config);
    const worker = await startWorker("partition-maintenance", { config, logger: memoryLogger("warn").logger, db: dbA });
    const events = await producer.store.queueEvents("partition-maintenance");
    try {
      await events.waitUntilReady();
      const job = await producer.enqueue("partition-maintenance", { monthsAhead: 10 });
      const result = (await waitForJob(job, events, 60_000)) as PartitionMaintenanceResult;
      expect(result.created).toEqual([
        monthPartitionName("transactions", addUtcMonths(utcMonthStart(new Date()), 9)),
        monthPartitionName("transactions", addUtcMonths(utcMonthStart(new Date()), 10)),
      ]);
      expect(result.defaultRows).toBe(0);
    } finally {
      await events.close();
      await worker.close();
      await producer.close();
    }
  });

  it("rejects bad payloads before they reach Redis, naming the field", async () => {
    const producer = Producer.fromConfig(config);
    const rejected = async (queue: string, payload: unknown) => {
      try {
        await producer.enqueueUnknown(queue, payload);
      } catch (err) {
        expect(err).toBeInstanceOf(PayloadValidationError);
        return (err as PayloadValidationError).fields.map((field) => field.path);
      }
      throw new Error(`payload ${JSON.stringify(payload)} was accepted`);
    };
    try {
      expect(await rejected("partition-maintenance", { table: "users; drop table users" })).toEqual(["table"]);
      expect(await rejected("partition-maintenance", { monthsAhead: 37 })).toEqual(["monthsAhead"]);
      expect(await rejected("partition-maintenance", { monthsAhead: -1 })).toEqual(["monthsAhead"]);
      expect(await rejected("archiving", { olderThanYears: 0 })).toEqual(["olderThanYears"]);
      expect(await rejected("archiving", { batchSize: 10 ** 9 })).toEqual(["batchSize"]);
      expect(await rejected("archiving", { statuses: ["PENDING"] })).toEqual(["statuses.0"]);
      expect(await rejected("archiving", { statuses: [] })).toEqual(["statuses"]);
      expect(await rejected("archiving", { maxRows: 0, dryRun: "yes" })).toEqual(["maxRows", "dryRun"]);
      await expect(producer.enqueueUnknown("partition-maintenance", { table: "users; drop table users" })).rejects.toThrow(
        /table: must be one of "transactions", "dbjobs.job_history", "dbjobs.audit_log"/,
      );
      expect(await (await producer.queue("partition-maintenance")).getJobCounts("waiting")).toEqual({ waiting: 0 });
      const { rows } = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_class WHERE relname = 'users'");
      expect(rows[0]?.n).toBe(1);
    } finally {
      await producer.close();
    }
  });
});
