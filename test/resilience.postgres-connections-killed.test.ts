import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { Producer } from "../src/queues/producer.js";
import { type InvoiceSpec, insertInvoices, liveInvoices, readInvoices, seededRandom, totalsMismatches } from "./support/invoice-data.js";
import { type CliRun, cliEnv, spawnCli } from "./support/spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig, testDb } from "./support/test-env.js";
import { someoneWaitsOn, waitFor } from "./support/wait-for.js";

/**
 * The worker's PostgreSQL connections are terminated (pg_terminate_backend,
 * as a failover or an operator would) while jobs run. Only this test
 * database's connections named `dbjobs:invoice-totals` are touched.
 */
describe("resilience: PostgreSQL connections killed under load", () => {
  let database: TestDatabase;
  let db: Db;
  let config: Config;
  let producer: Producer;
  let invoices: InvoiceSpec[];
  let worker: CliRun | undefined;

  // Takes $1 the database name. Terminates the worker's backends there; returns how many.
  const terminateWorkerBackends = async () => {
    const { rows } = await db.pool.query<{ killed: number }>(
      `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS killed
         FROM pg_stat_activity WHERE datname = $1 AND application_name = 'dbjobs:invoice-totals'`,
      [database.name],
    );
    return rows[0]?.killed ?? 0;
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    db = testDb(database.url);
    invoices = liveInvoices(300, seededRandom(4242), { maxLines: 20 });
    await insertInvoices(db.pool, invoices);
    config = testConfig(database.url);
    producer = Producer.fromConfig(config);
  });

  afterAll(async () => {
    if (worker && worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
    await worker?.exited;
    await (await producer?.queue("invoice-totals"))?.obliterate({ force: true });
    await producer?.close();
    await db?.close();
    await database?.drop();
  });

  it("jobs in flight fail, retry and finish; every invoice ends up with correct totals", async () => {
    worker = spawnCli(["worker", "invoice-totals", "--concurrency", "3"], cliEnv(config));
    await worker.waitForOutput(/worker started/, 90_000);

    // One job held in flight for certain: the test locks a row that job must update.
    const [held, ...rest] = invoices as [InvoiceSpec, ...InvoiceSpec[]];
    const blocker: pg.PoolClient = await db.pool.connect();
    const blockerPid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid as number;
    await blocker.query("BEGIN");
    await blocker.query(`SELECT 1 FROM "invoice_line_items" WHERE "invoiceId" = $1::uuid FOR UPDATE`, [held.id]);
    const heldJob = await producer.enqueue("invoice-totals", { invoiceIds: [held.id] });
    await waitFor("the held job to block on the row lock", () => someoneWaitsOn(blockerPid, (sql, values) => db.pool.query(sql, values)), 60_000);

    // Load: jobs of 10 invoices each, enqueued while connections keep being killed.
    const jobs = [heldJob];
    for (let start = 0; start < rest.length; start += 10) {
      jobs.push(await producer.enqueue("invoice-totals", { invoiceIds: rest.slice(start, start + 10).map((invoice) => invoice.id) }));
    }
    let killed = await terminateWorkerBackends();
    await blocker.query("ROLLBACK");
    blocker.release();
    for (let round = 0; round < 8; round++) {
      await sleep(300);
      killed += await terminateWorkerBackends();
    }
    expect(killed).toBeGreaterThan(0);

    await waitFor(
      "every job to complete",
      async () => {
        // A worker that died leaves its jobs active with no one to finish them: say so at once, with what it printed.
        if (worker?.child.exitCode !== null || worker?.child.signalCode !== null)
          throw new Error(`the worker exited (${worker?.child.exitCode ?? worker?.child.signalCode}):\n${worker?.stderr().slice(-4000)}`);
        const counts = await (await producer.queue("invoice-totals")).getJobCounts("completed", "failed");
        return (counts.completed ?? 0) + (counts.failed ?? 0) >= jobs.length;
      },
      180_000,
      250,
    ).catch(async (err: Error) => {
      const byState = await (await producer.queue("invoice-totals")).getJobCounts("active", "waiting", "delayed", "completed", "failed");
      err.message += `\njobs by state: ${JSON.stringify(byState)}\nworker stderr (tail):\n${worker?.stderr().slice(-4000)}`;
      throw err;
    });
    const counts = await (await producer.queue("invoice-totals")).getJobCounts("completed", "failed");
    expect(counts).toMatchObject({ completed: jobs.length, failed: 0 });

    // The held job failed its first attempt on the terminated connection and succeeded on a retry.
    const finished = await (await producer.queue("invoice-totals")).getJob(String(heldJob.id));
    expect(await finished?.getState()).toBe("completed");
    expect(finished?.stacktrace?.length).toBeGreaterThanOrEqual(1);
    expect(finished?.stacktrace?.join("\n")).toMatch(/terminat|connection/i);
    expect(finished?.returnvalue).toMatchObject({ invoicesUpdated: 1 });

    expect(totalsMismatches(await readInvoices(db.pool))).toEqual([]);
    expect(worker.child.exitCode).toBeNull();
  }, 400_000);
});
