import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cancelJob } from "../src/queues/cancel-job.js";
import { createBloatedTable, createMaintenanceHarness, type MaintenanceHarness } from "./support/db-maintenance-harness.js";
import { memoryLogger } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

// Indexes of maint_cancel: name and whether it is valid.
const indexesSql = `
SELECT c.relname AS name, i.indisvalid AS valid
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'maint_cancel'::regclass ORDER BY 1`;

/**
 * A REINDEX CONCURRENTLY cancelled mid-build (it waits for an old snapshot the
 * test holds) leaves an invalid `_ccnew` index behind in PostgreSQL; the job
 * drops it before it ends cancelled.
 */
describe("cancel: db-maintenance drops the invalid index a cancelled REINDEX CONCURRENTLY leaves", () => {
  let h: MaintenanceHarness;

  beforeAll(async () => {
    h = await createMaintenanceHarness();
    await createBloatedTable(h.database.url, "maint_cancel", 50_000);
  });
  afterAll(async () => {
    await h?.close();
  });

  it("ends cancelled with only the original, valid indexes left", { timeout: 120_000 }, async () => {
    const before = await h.sql(indexesSql);
    const snapshot = new pg.Client({ connectionString: h.database.url });
    await snapshot.connect();
    try {
      // An open snapshot: REINDEX CONCURRENTLY builds its _ccnew copy, then waits for this transaction.
      await snapshot.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      await snapshot.query("SELECT count(*) FROM maint_cancel");
      const job = await h.producer.enqueue("db-maintenance", { analyze: false, reindex: true, tables: ["maint_cancel"], lockTimeoutMs: 60_000 });
      await waitFor("the _ccnew copy to exist", async () => (await h.sql(indexesSql)).some((index) => String(index.name).endsWith("_ccnew")), 60_000);

      const cancelling = cancelJob({
        store: h.producer.store,
        connectTimeoutMs: h.config.QUEUE_CONNECT_TIMEOUT_MS,
        logger: memoryLogger("warn").logger,
        queue: "db-maintenance",
        jobId: String(job.id),
        actor: "test",
        via: "cli",
        waitMs: 30_000,
      });
      // The REINDEX was cancelled while waiting: its copy is left, invalid.
      await waitFor("the reindex to stop", async () => (await h.sql("SELECT count(*)::int AS n FROM pg_stat_progress_create_index"))[0]?.n === 0, 10_000);
      expect(await h.sql(indexesSql)).toContainEqual(expect.objectContaining({ valid: false }));
      // DROP INDEX CONCURRENTLY waits for the old snapshot too; let it go.
      await snapshot.query("COMMIT");
      const outcome = await cancelling;
      expect(outcome.outcome).toBe("cancelled");
      expect(outcome.failedReason).toMatch(/^cancelled: by test \(cli\)/);
    } finally {
      await snapshot.end().catch(() => undefined);
    }
    expect(await h.sql(indexesSql)).toEqual(before);
    expect(h.logLines()).toContainEqual(expect.objectContaining({ msg: "dropped the invalid index a cancelled reindex left" }));
  });
});
