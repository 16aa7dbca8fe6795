import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { Producer } from "../src/queues/producer.js";
import { type InvoiceSpec, insertInvoices, liveInvoices, seededRandom } from "./support/invoice-data.js";
import { type CliRun, cliEnv, runCli, spawnCli } from "./support/spawn-cli.js";
import { testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

// Takes $1 the blocking backend's pid. Backends of this database waiting on a lock it holds.
const waitingOnSql = `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND $1::int = ANY(pg_blocking_pids(pid))`;

/**
 * `dbjobs scale` on a running worker process: with concurrency 1 and every
 * job blocked on a row the test has locked, one job runs and the others wait;
 * after `scale invoice-totals 3` the same worker runs all three at once, with
 * no restart. `status` shows the new value, and a worker started later keeps it.
 */
describe("scale: concurrency changed on a running worker", () => {
  const testDatabase = useTestDb();
  let config: Config;
  let invoices: InvoiceSpec[];
  const workers: CliRun[] = [];

  beforeAll(async () => {
    config = testConfig(testDatabase.url);
    invoices = liveInvoices(3, seededRandom(7));
    await insertInvoices(testDatabase.db.pool, invoices);
  });
  afterAll(async () => {
    for (const worker of workers) if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
    await Promise.all(workers.map((worker) => worker.exited));
  });

  it("runs more jobs at once right after `dbjobs scale`, shows it in status, and keeps it across a restart", { timeout: 240_000 }, async () => {
    const env = cliEnv(config, { WORKER_CONCURRENCY: "1", DBJOBS_ACTOR: "tester" });
    const producer = Producer.fromConfig(config);
    const blocker = new pg.Client({ connectionString: testDatabase.url });
    await blocker.connect();
    try {
      const pid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid as number;
      const waiting = async () => (await testDatabase.db.pool.query<{ waiting: number }>(waitingOnSql, [pid])).rows[0]?.waiting ?? 0;
      await blocker.query("BEGIN");
      await blocker.query(`SELECT 1 FROM "invoice_line_items" WHERE "invoiceId" = ANY($1::uuid[]) FOR UPDATE`, [invoices.map((invoice) => invoice.id)]);

      const first = spawnCli(["worker", "invoice-totals"], env);
      workers.push(first);
      await first.waitForOutput(/worker started/, 90_000);
      expect(first.stderr()).toMatch(/"concurrency":1/);
      for (const invoice of invoices) await producer.enqueue("invoice-totals", { invoiceIds: [invoice.id] });
      await waitFor("one job to block on the test's lock", async () => (await waiting()) === 1, 60_000);
      // Still one: concurrency 1 holds the others back.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await waiting()).toBe(1);

      const scaled = await runCli(["scale", "invoice-totals", "3", "--json"], env);
      expect(scaled.code).toBe(0);
      expect(JSON.parse(scaled.stdout)).toEqual({ queue: "invoice-totals", concurrency: 3, previous: null });
      await waitFor("all three jobs to run at once on the same worker", async () => (await waiting()) === 3, 30_000);
      expect(first.stderr()).toMatch(/"from":1,"to":3[^\n]*"msg":"concurrency changed"/);

      const status = await runCli(["status", "--json"], env);
      const row = (JSON.parse(status.stdout) as { queues: { queue: string; concurrency: number; concurrencySource: string }[] }).queues.find(
        (queue) => queue.queue === "invoice-totals",
      );
      expect(row).toMatchObject({ concurrency: 3, concurrencySource: "scaled" });

      await blocker.query("ROLLBACK");
      const queue = await producer.queue("invoice-totals");
      await waitFor("the jobs to complete", async () => (await queue.getJobCountByTypes("completed")) === 3, 60_000);

      // A worker started now reads the stored value, over WORKER_CONCURRENCY=1.
      const second = spawnCli(["worker", "invoice-totals"], env);
      workers.push(second);
      await second.waitForOutput(/worker started/, 90_000);
      expect(second.stderr()).toMatch(/"concurrency":3[^\n]*"msg":"worker started"/);

      const refused = await runCli(["scale", "invoice-totals", "0"], env);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/Concurrency "0" is not a whole number from 1 to 1000/);
    } finally {
      await blocker.end().catch(() => undefined);
      await producer.close();
    }
  });
});
