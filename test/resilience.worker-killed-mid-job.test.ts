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
 * Workers die without warning (SIGKILL, the OOM killer) or are told twice to
 * stop. The job they held must not be lost: BullMQ's stalled-job check in
 * another worker moves it back once its lock expires (lockDuration, 30 s for
 * invoice-totals), and it completes there. Graceful SIGTERM draining is
 * covered by worker.graceful-shutdown.test.ts.
 */
describe("resilience: a worker killed mid-job", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let invoices: InvoiceSpec[];
  const children: CliRun[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    db = testDatabase.db;
    invoices = liveInvoices(4, seededRandom(99));
    await insertInvoices(db.pool, invoices);
  });

  afterAll(async () => {
    for (const child of children) if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill("SIGKILL");
    await Promise.all(children.map((child) => child.exited));
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  function startWorker(config: Config): CliRun {
    const run = spawnCli(["worker", "invoice-totals"], cliEnv(config, { LOG_LEVEL: "debug" }));
    children.push(run);
    return run;
  }

  /** A worker holding a job that is blocked on a row the test has locked. */
  async function jobHeldBy(invoice: InvoiceSpec) {
    const config = testConfig(testDatabase.url);
    const producer = Producer.fromConfig(config);
    cleanups.push(async () => {
      await (await producer.queue("invoice-totals")).obliterate({ force: true });
      await producer.close();
    });
    const blocker: pg.PoolClient = await db.pool.connect();
    const pid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid as number;
    await blocker.query("BEGIN");
    await blocker.query(`SELECT 1 FROM "invoice_line_items" WHERE "invoiceId" = $1::uuid FOR UPDATE`, [invoice.id]);
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await blocker.query("ROLLBACK");
      blocker.release();
    };
    cleanups.push(release);
    const first = startWorker(config);
    await first.waitForOutput(/worker started/, 90_000);
    const job = await producer.enqueue("invoice-totals", { invoiceIds: [invoice.id] });
    await waitFor("the job to block on the test's row lock", () => someoneWaitsOn(pid, (sql, values) => db.pool.query(sql, values)), 60_000);
    expect(await job.getState()).toBe("active");
    return { config, producer, first, job, release };
  }

  async function expectCompletedElsewhere(held: Awaited<ReturnType<typeof jobHeldBy>>, invoice: InvoiceSpec) {
    const second = startWorker(held.config);
    await second.waitForOutput(/worker started/, 90_000);
    await waitFor("the job to complete on the second worker", async () => (await held.job.getState()) === "completed", 150_000, 500);
    expect(second.stderr()).toMatch(/"msg":"job stalled; it will be retried"/);
    // The job is marked completed in Redis before the worker's log line reaches this process.
    const completedLine = new RegExp(`"jobId":"${held.job.id}"[^\\n]*"msg":"job completed"`);
    await second.waitForOutput(completedLine, 30_000);
    expect(second.stderr()).toMatch(completedLine);
    const finished = await (await held.producer.queue("invoice-totals")).getJob(String(held.job.id));
    expect(finished?.returnvalue).toMatchObject({ invoicesUpdated: 1, invoicesChanged: 1 });
    expect(totalsMismatches(await readInvoices(db.pool, [invoice.id]))).toEqual([]);
    second.child.kill("SIGTERM");
    expect((await second.exited).code).toBe(0);
  }

  it("SIGKILL: the job is recovered as stalled and completes on another worker", async () => {
    const invoice = invoices[0] as InvoiceSpec;
    const held = await jobHeldBy(invoice);
    held.first.child.kill("SIGKILL");
    expect((await held.first.exited).signal).toBe("SIGKILL");
    // The killed worker's statement dies with its connection; free the row for the next attempt.
    await held.release();
    await expectCompletedElsewhere(held, invoice);
  }, 300_000);

  it("SIGTERM with several jobs in flight: each finishes within the drain timeout and the process exits 0", async () => {
    const config = testConfig(testDatabase.url, { SHUTDOWN_TIMEOUT_MS: "60000" });
    const producer = Producer.fromConfig(config);
    cleanups.push(async () => {
      await (await producer.queue("invoice-totals")).obliterate({ force: true });
      await producer.close();
    });
    const targets = [invoices[2], invoices[3]] as InvoiceSpec[];
    const blocker: pg.PoolClient = await db.pool.connect();
    const pid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid as number;
    await blocker.query("BEGIN");
    await blocker.query(`SELECT 1 FROM "invoice_line_items" WHERE "invoiceId" = ANY($1::uuid[]) FOR UPDATE`, [targets.map((invoice) => invoice.id)]);
    cleanups.push(async () => blocker.query("ROLLBACK").finally(() => blocker.release()));
    const worker = spawnCli(["worker", "invoice-totals", "--concurrency", "2"], cliEnv(config, { LOG_LEVEL: "debug" }));
    children.push(worker);
    await worker.waitForOutput(/worker started/, 90_000);
    const jobs = await Promise.all(targets.map((invoice) => producer.enqueue("invoice-totals", { invoiceIds: [invoice.id] })));
    await waitFor(
      "both jobs to block on the row locks",
      async () => {
        const { rows } = await db.pool.query<{ waiting: number }>(
          `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND $1::int = ANY(pg_blocking_pids(pid))`,
          [pid],
        );
        return (rows[0]?.waiting ?? 0) >= 2;
      },
      60_000,
    );

    worker.child.kill("SIGTERM");
    await worker.waitForOutput(/shutting down: draining in-flight work/);
    await blocker.query("COMMIT");
    const { code } = await worker.exited;
    expect(code).toBe(0);
    for (const job of jobs) {
      const finished = await (await producer.queue("invoice-totals")).getJob(String(job.id));
      expect(await finished?.getState()).toBe("completed");
    }
    expect(
      totalsMismatches(
        await readInvoices(
          db.pool,
          targets.map((invoice) => invoice.id),
        ),
      ),
    ).toEqual([]);
  }, 300_000);

  it("a second SIGTERM forces exit with the job unfinished, and another worker completes it", async () => {
    const invoice = invoices[1] as InvoiceSpec;
    const held = await jobHeldBy(invoice);
    held.first.child.kill("SIGTERM");
    await held.first.waitForOutput(/shutting down: draining in-flight work/);
    held.first.child.kill("SIGTERM");
    expect((await held.first.exited).code).toBe(130);
    expect(await held.job.getState()).toBe("active");
    await held.release();
    await expectCompletedElsewhere(held, invoice);
  }, 300_000);
});
