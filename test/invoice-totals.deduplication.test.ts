import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import type { AnyQueueEvents } from "../src/lib/queue-store.js";
import type { Producer } from "../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { type InvoiceSpec, insertInvoices, liveInvoices, readInvoices, seededRandom, totalsMismatches } from "./support/invoice-data.js";
import { openQueueClient, type QueueClient } from "./support/queue-client.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";
import { someoneWaitsOn, waitFor } from "./support/wait-for.js";

describe("invoice-totals jobs for one invoice enqueued close together collapse into one", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let producer: Producer;
  let events: AnyQueueEvents;
  let client: QueueClient;
  let worker: RunningWorker | undefined;
  let a: InvoiceSpec;
  let b: InvoiceSpec;

  const counts = async () => (await producer.queue("invoice-totals")).getJobCounts("waiting", "delayed", "active", "completed", "failed", "prioritized");

  beforeAll(async () => {
    db = testDatabase.db;
    config = testConfig(testDatabase.url);
    [a, b] = liveInvoices(2, seededRandom(7)) as [InvoiceSpec, InvoiceSpec];
    await insertInvoices(db.pool, [a, b]);
    client = await openQueueClient("invoice-totals", config);
    ({ producer, events } = client);
  });

  afterAll(async () => {
    await worker?.close();
    await client?.close();
  });

  it("several enqueues of the same invoice before its job starts make one job; other invoices and lists get their own", async () => {
    const forA = [];
    for (let i = 0; i < 5; i++) forA.push(await producer.enqueue("invoice-totals", { invoiceIds: [a.id] }));
    const forB = await producer.enqueue("invoice-totals", { invoiceIds: [b.id] });
    // A list is not collapsed: it is one caller's explicit batch.
    const lists = [
      await producer.enqueue("invoice-totals", { invoiceIds: [a.id, b.id] }),
      await producer.enqueue("invoice-totals", { invoiceIds: [a.id, b.id] }),
    ];

    expect(new Set(forA.map((job) => job.id)).size).toBe(1);
    expect(new Set([forA[0]?.id, forB.id, ...lists.map((job) => job.id)]).size).toBe(4);
    const before = await counts();
    expect((before.waiting ?? 0) + (before.delayed ?? 0) + (before.prioritized ?? 0)).toBe(4);

    worker = await startWorker("invoice-totals", { config, logger: memoryLogger("warn").logger, db });
    for (const job of [forA[0], forB, ...lists]) if (job) await waitForJob(job, events, 60_000);

    expect(await counts()).toMatchObject({ completed: 4, failed: 0, waiting: 0, delayed: 0, active: 0 });
    expect(totalsMismatches(await readInvoices(db.pool, [a.id, b.id]))).toEqual([]);
  });

  it("an enqueue that arrives while the invoice's job runs is not lost: exactly one more run follows", async () => {
    const completedBefore = (await counts()).completed ?? 0;
    // A producer app changes a line of A in a transaction that is still open
    // when the job starts. That line's stored lineTotal is wrong, so the job
    // must write it and blocks on the app's row lock, having already taken the
    // snapshot its sums are computed from.
    const {
      rows: [line],
    } = await db.pool.query<{ id: string }>(
      `UPDATE "invoice_line_items" SET "lineTotal" = 0 WHERE "id" = (SELECT "id" FROM "invoice_line_items" WHERE "invoiceId" = $1::uuid ORDER BY "id" LIMIT 1) RETURNING "id"::text`,
      [a.id],
    );
    const app = await db.pool.connect();
    try {
      const { rows } = await app.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      await app.query("BEGIN");
      await app.query(`UPDATE "invoice_line_items" SET "quantity" = "quantity" + 2, "updatedAt" = now() WHERE "id" = $1::uuid`, [line?.id]);
      const first = await producer.enqueue("invoice-totals", { invoiceIds: [a.id] });
      await waitFor("the job to block on the app's row lock", () => someoneWaitsOn(rows[0]?.pid as number, (sql, values) => db.pool.query(sql, values)));
      expect(await first.getState()).toBe("active");
      // The app enqueues again (twice, as two requests might) while that run is in flight.
      await producer.enqueue("invoice-totals", { invoiceIds: [a.id] });
      await producer.enqueue("invoice-totals", { invoiceIds: [a.id] });
      await app.query("COMMIT");
    } finally {
      app.release();
    }

    await waitFor("the follow-up run", async () => {
      const now = await counts();
      return (now.completed ?? 0) >= completedBefore + 2 && now.waiting === 0 && now.delayed === 0 && now.active === 0;
    });
    expect(totalsMismatches(await readInvoices(db.pool, [a.id]))).toEqual([]);
    expect((await counts()).completed).toBe(completedBefore + 2);
  });
});
