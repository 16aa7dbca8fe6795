import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { advisoryLock, lockNames } from "../src/lib/advisory-locks.js";
import { PayloadValidationError } from "../src/lib/errors.js";
import { createMaintenanceHarness, type MaintenanceHarness, waitForModCounts } from "./support/db-maintenance-harness.js";

describe("db-maintenance ANALYZE picks its tables from the database's own statistics", () => {
  let h: MaintenanceHarness;

  async function lastAnalyze(table: string): Promise<Date | null> {
    const [row] = await h.sql<{ at: Date | null }>("SELECT last_analyze AS at FROM pg_stat_all_tables WHERE relid = to_regclass($1)", [table]);
    return row?.at ?? null;
  }

  beforeAll(async () => {
    h = await createMaintenanceHarness();
    const writer = new pg.Client({ connectionString: h.database.url });
    await writer.connect();
    try {
      for (const table of ["maint_busy", "maint_quiet"]) {
        await writer.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL) WITH (autovacuum_enabled = false)`);
        await writer.query(`INSERT INTO ${table} SELECT g, 0 FROM generate_series(1, 10000) g`);
      }
      // Its own settings make 100 changes enough, where the server default would need 1050.
      await writer.query(
        "CREATE TABLE maint_tuned (id int PRIMARY KEY, n int NOT NULL) WITH (autovacuum_enabled = false, autovacuum_analyze_threshold = 10, autovacuum_analyze_scale_factor = 0)",
      );
      await writer.query("INSERT INTO maint_tuned SELECT g, 0 FROM generate_series(1, 10000) g");
      // ANALYZE only resets counters already flushed: let the inserts' counts land first.
      await writer.query("SELECT pg_stat_force_next_flush()");
      await writer.query("SELECT 1");
      await waitForModCounts(h.database.url, { maint_busy: 10000, maint_quiet: 10000, maint_tuned: 10000 });
      await writer.query("ANALYZE maint_busy, maint_quiet, maint_tuned");
      // Threshold with the defaults: 50 + 0.1 × 10000 = 1050 changes.
      await writer.query("UPDATE maint_busy SET n = n + 1 WHERE id <= 5000");
      await writer.query("UPDATE maint_quiet SET n = n + 1 WHERE id <= 100");
      await writer.query("UPDATE maint_tuned SET n = n + 1 WHERE id <= 100");
      await writer.query("SELECT pg_stat_force_next_flush()");
      await writer.query("SELECT 1");
    } finally {
      await writer.end();
    }
    await waitForModCounts(h.database.url, { maint_busy: 5000, maint_quiet: 100, maint_tuned: 100 });
  });

  afterAll(async () => {
    await h?.close();
  });

  it("a dry run lists each ANALYZE with its reason and estimate, and changes nothing", async () => {
    const before = await lastAnalyze("maint_busy");
    const result = await h.run({ dryRun: true });
    expect(result.dryRun).toBe(true);
    expect(result.analyzed).toEqual([]);
    const busy = result.planned.find((action) => action.target === "maint_busy");
    expect(busy).toMatchObject({ action: "analyze", estimate: { modsSinceAnalyze: 5000, threshold: 1050, estimatedRows: 10000 } });
    expect(busy?.reason).toMatch(/5000 rows changed since the last analyze > threshold 1050/);
    expect(result.planned.map((action) => action.target)).not.toContain("maint_quiet");
    expect(await lastAnalyze("maint_busy")).toEqual(before);
    const [stats] = await h.sql<{ mods: number }>("SELECT n_mod_since_analyze::int AS mods FROM pg_stat_user_tables WHERE relname = 'maint_busy'");
    expect(stats?.mods).toBeGreaterThanOrEqual(5000);
  });

  it("analyzes the heavily updated table and the table past its own threshold, not the quiet one, and every partitioned parent", async () => {
    const quietBefore = await lastAnalyze("maint_quiet");
    const started = new Date(Date.now() - 1000);
    const result = await h.run({ analyze: true });

    expect(result.analyzed).toContain("maint_busy");
    expect(result.analyzed).toContain("maint_tuned");
    expect(result.analyzed).not.toContain("maint_quiet");
    expect(result.analyzed).toEqual(expect.arrayContaining(["transactions", "transactions_archive"]));
    expect(result.skipped).toEqual([]);
    expect(result.bloatMethod).toBeNull();

    expect((await lastAnalyze("maint_busy"))?.getTime()).toBeGreaterThan(started.getTime());
    expect((await lastAnalyze("maint_tuned"))?.getTime()).toBeGreaterThan(started.getTime());
    expect(await lastAnalyze("maint_quiet")).toEqual(quietBefore);
    // The partitioned parent now has statistics of its own, which autovacuum would never have gathered.
    expect((await lastAnalyze("transactions"))?.getTime()).toBeGreaterThan(started.getTime());
    const partitions = result.planned.find((action) => action.target === "transactions");
    expect(partitions?.reason).toMatch(/partitioned parent/);
    // Its partitions were sampled by the parent's ANALYZE, not analyzed a second time.
    expect(result.analyzed).not.toContain("transactions_default");
    // Progress names each table as it goes, and ends with the totals.
    const progress = h.lastProgress();
    expect(progress).toContainEqual(expect.objectContaining({ step: "analyze", table: "maint_busy" }));
    expect(progress.at(-1)).toMatchObject({ step: "done", analyzed: result.analyzed.length });
  });

  it("runs again without work to do once statistics are fresh", async () => {
    const result = await h.run({});
    expect(result.analyzed).not.toContain("maint_busy");
    expect(result.analyzed).toEqual(expect.arrayContaining(["transactions"]));
  });

  it("analyzes only the named tables; a partitioned parent named brings nothing else", async () => {
    await h.sql("UPDATE maint_busy SET n = n + 1");
    const result = await h.run({ tables: ["transactions"] });
    expect(result.analyzed).toEqual(["transactions"]);
  });

  it("rejects pg_class and an injection attempt at enqueue time, naming the field, and nothing reaches Redis", async () => {
    const queue = await h.producer.queue("db-maintenance");
    const countBefore = await queue.count();
    for (const name of ["pg_class", "x; drop table users"]) {
      const attempt = h.producer.enqueueUnknown("db-maintenance", { tables: [name] });
      await expect(attempt).rejects.toBeInstanceOf(PayloadValidationError);
      await expect(h.producer.enqueueUnknown("db-maintenance", { tables: [name] })).rejects.toThrow(/tables\.0: /);
    }
    expect(await queue.count()).toBe(countBefore);
    expect(await h.sql("SELECT 1 FROM users LIMIT 1")).toEqual([]);
  });

  it("fails a job naming a table that is not ours (another schema, a typo) without retries, whatever reached the queue", async () => {
    await h.sql("CREATE SCHEMA other");
    await h.sql("CREATE TABLE other.secrets (id int)");
    const queue = await h.producer.queue("db-maintenance");
    // Bypass the producer's check, as a foreign producer might, to see the worker's own.
    for (const tables of [["secrets"], ["no_such_table", "maint_busy"], ["pg_class"]]) {
      const job = await queue.add("db-maintenance", { tables });
      const state = await waitForFinalState(job.id as string);
      expect(state.state).toBe("failed");
      expect(state.attemptsMade).toBe(1);
      expect(state.failedReason).toContain(`"${tables[0]}"`);
      expect(state.failedReason).not.toContain('"maint_busy"');
    }
  });

  it("skips cleanly when another run holds the lock", async () => {
    const other = new pg.Client({ connectionString: h.database.url });
    await other.connect();
    try {
      await advisoryLock(other, lockNames.dbMaintenance());
      await h.sql("UPDATE maint_busy SET n = n + 1");
      const result = await h.run({});
      expect(result.analyzed).toEqual([]);
      expect(result.skipped).toEqual([{ name: "db-maintenance", reason: expect.stringMatching(/another db-maintenance run is in progress/) }]);
    } finally {
      await other.end();
    }
    const result = await h.run({ tables: ["transactions"] });
    expect(result.analyzed).toEqual(["transactions"]);
  });

  async function waitForFinalState(jobId: string) {
    const queue = await h.producer.queue("db-maintenance");
    const deadline = Date.now() + 60_000;
    for (;;) {
      const state = await queue.getJobState(jobId);
      // Read the job only once it is final, so its attempt count and reason are the final ones.
      const job = state === "failed" || state === "completed" ? await queue.getJob(jobId) : undefined;
      if (job) return { state, attemptsMade: job.attemptsMade, failedReason: job.failedReason };
      if (Date.now() > deadline) throw new Error(`job ${jobId} did not finish`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
});
