import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { Producer } from "../src/queues/producer.js";
import { type InvoiceSpec, insertInvoices, liveInvoices, readInvoices, seededRandom, totalsMismatches } from "./support/invoice-data.js";
import { type CliRun, cliEnv, spawnCli } from "./support/spawn-cli.js";
import { testConfig, useTestDb } from "./support/test-env.js";
import { someoneWaitsOn, waitFor } from "./support/wait-for.js";

/**
 * A worker process gets SIGTERM while a job is in flight. The job is made to
 * stay in flight for as long as the test wants, without any test-only code:
 * an open transaction in the test holds a row the job must write, exactly as
 * a slow producer-app transaction would.
 */
describe("dbjobs worker shuts down gracefully", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let invoices: InvoiceSpec[];
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    db = testDatabase.db;
    invoices = liveInvoices(6, seededRandom(11));
    await insertInvoices(db.pool, invoices);
  });

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  /** Starts a worker child, enqueues a job for `invoice` and returns once the job is blocked on the test's row lock. */
  async function jobInFlight(invoice: InvoiceSpec, env: Record<string, string> = {}) {
    const config: Config = testConfig(testDatabase.url);
    const producer = Producer.fromConfig(config);
    const blocker: pg.PoolClient = await db.pool.connect();
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await blocker.query("ROLLBACK");
      blocker.release();
    };
    const { rows } = await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    const pid = rows[0]?.pid as number;
    await blocker.query("BEGIN");
    await blocker.query(`SELECT 1 FROM "invoice_line_items" WHERE "invoiceId" = $1::uuid FOR UPDATE`, [invoice.id]);
    const worker: CliRun = spawnCli(["worker", "invoice-totals"], cliEnv(config, env));
    cleanups.push(async () => {
      await release();
      if (worker.child.exitCode === null) worker.child.kill("SIGKILL");
      await (await producer.queue("invoice-totals")).obliterate({ force: true });
      await producer.close();
    });
    await worker.waitForOutput(/worker started/, 60_000);
    const job = await producer.enqueue("invoice-totals", { invoiceIds: [invoice.id] });
    await waitFor("the job to block on the test's row lock", () => someoneWaitsOn(pid, (sql, values) => db.pool.query(sql, values)));
    expect(await job.getState()).toBe("active");
    return { config, producer, worker, job, release };
  }

  it("on SIGTERM stops taking jobs, finishes the job in flight, and exits 0", async () => {
    const [invoice, other] = invoices as [InvoiceSpec, InvoiceSpec];
    const { producer, worker, job, release } = await jobInFlight(invoice);

    worker.child.kill("SIGTERM");
    await worker.waitForOutput(/shutting down: draining in-flight work/);
    // A job added in the first instants after the signal may still be taken
    // (and finished: nothing is lost). Once the worker says it has stopped
    // taking jobs, every claim it began has settled and it refuses any other
    // (src/lib/closing-worker.ts), on either backend: a job added from then on
    // must be left for the next worker. Waiting for that line, not for a fixed
    // time, keeps a slow machine from adding the job too early.
    await worker.waitForOutput(/stopped taking jobs/);
    const later = await producer.enqueue("invoice-totals", { invoiceIds: [invoice.id, other.id] });
    await sleep(1000);
    expect(worker.child.exitCode).toBeNull(); // still draining: the job is still in flight

    await release();
    const { code } = await worker.exited;

    expect(code).toBe(0);
    const finished = await (await producer.queue("invoice-totals")).getJob(job.id as string);
    expect(await finished?.getState()).toBe("completed");
    expect(finished?.returnvalue).toMatchObject({ invoicesUpdated: 1, invoicesChanged: 1 });
    expect(totalsMismatches(await readInvoices(db.pool, [invoice.id]))).toEqual([]);
    expect(await later.getState()).toBe("waiting");
    expect(worker.stderr()).toMatch(/shutdown complete/);
  });

  it("a second signal during a long drain forces exit at once, non-zero", async () => {
    const { worker, job, release } = await jobInFlight(invoices[2] as InvoiceSpec);

    worker.child.kill("SIGTERM");
    await worker.waitForOutput(/shutting down: draining in-flight work/);
    worker.child.kill("SIGTERM");
    const { code } = await worker.exited;

    expect(code).toBe(130);
    expect(worker.stderr()).toMatch(/second signal: forcing exit/);
    // The job was not finished; BullMQ will find it stalled and hand it to another worker.
    expect(await job.getState()).toBe("active");
    await release();
  });

  it("exits 1 when the drain outlasts SHUTDOWN_TIMEOUT_MS", async () => {
    const { worker, release } = await jobInFlight(invoices[3] as InvoiceSpec, { SHUTDOWN_TIMEOUT_MS: "1500" });

    worker.child.kill("SIGTERM");
    const { code } = await worker.exited;

    expect(code).toBe(1);
    expect(worker.stderr()).toMatch(/drain timed out: forcing exit/);
    await release();
  });
});
