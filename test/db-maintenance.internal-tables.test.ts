import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveScope } from "../src/db-catalog/own-tables.js";
import { createMaintenanceHarness, type MaintenanceHarness, waitForModCounts } from "./support/db-maintenance-harness.js";

/**
 * Prisma's migration ledger and the queue backend's or dbjobs' own tables are
 * not the application's: a run leaves them alone unless its payload names
 * them for upkeep.
 */
describe("db-maintenance takes internal tables only when they are named", () => {
  let h: MaintenanceHarness;
  let client: pg.Client;
  const internal = ["_prisma_migrations", "bullmq.probe_jobs", "dbjobs_ledger"];

  beforeAll(async () => {
    h = await createMaintenanceHarness();
    client = new pg.Client({ connectionString: h.database.url });
    await client.connect();
    // What BullMQ's PostgreSQL backend and dbjobs' own bookkeeping would bring, next to an application table.
    await client.query("CREATE SCHEMA IF NOT EXISTS bullmq");
    await client.query("CREATE TABLE bullmq.probe_jobs (id int PRIMARY KEY, n int NOT NULL) WITH (autovacuum_enabled = false)");
    await client.query("CREATE TABLE dbjobs_ledger (id int PRIMARY KEY, n int NOT NULL) WITH (autovacuum_enabled = false)");
    await client.query("CREATE TABLE maint_orders (id int PRIMARY KEY, n int NOT NULL) WITH (autovacuum_enabled = false)");
    await client.query("ALTER TABLE _prisma_migrations SET (autovacuum_enabled = false)");
    for (const table of ["bullmq.probe_jobs", "dbjobs_ledger", "maint_orders"]) {
      await client.query(`INSERT INTO ${table} SELECT g, 0 FROM generate_series(1, 200) g`);
    }
    // Enough changes to pass every table's analyze threshold (50 + 10% of its rows).
    for (let round = 0; round < 30; round++) await client.query('UPDATE _prisma_migrations SET "logs" = "logs"');
    await client.query("SELECT pg_stat_force_next_flush()");
    await client.query("SELECT 1");
    await waitForModCounts(h.database.url, { _prisma_migrations: 60, probe_jobs: 200, dbjobs_ledger: 200, maint_orders: 200 });
  });

  afterAll(async () => {
    await client?.end();
    await h?.close();
  });

  it("leaves them out of the scope when no tables are named", async () => {
    const scope = (await resolveScope(client, undefined)).map((table) => table.name);
    expect(scope).toContain("maint_orders");
    expect(scope).toContain("transactions");
    for (const name of internal) expect(scope).not.toContain(name);

    const result = await h.run({ dryRun: true });
    const targets = result.planned.map((action) => action.target);
    expect(targets).toContain("maint_orders");
    for (const name of internal) expect(targets).not.toContain(name);
  });

  it("takes them when they are named explicitly", async () => {
    expect((await resolveScope(client, internal)).map((table) => table.name).sort()).toEqual([...internal].sort());

    const result = await h.run({ tables: ["_prisma_migrations"] });
    expect(result.analyzed).toEqual(["_prisma_migrations"]);
    const [row] = await h.sql<{ at: Date | null }>("SELECT last_analyze AS at FROM pg_stat_all_tables WHERE relid = '_prisma_migrations'::regclass");
    expect(row?.at).not.toBeNull();

    const queueTables = await h.run({ tables: ["bullmq.probe_jobs", "dbjobs_ledger"], dryRun: true });
    expect(queueTables.planned.map((action) => action.target).sort()).toEqual(["bullmq.probe_jobs", "dbjobs_ledger"]);
  });

  it("fails a name that is not a table, naming the tables it takes and the internal ones", async () => {
    const attempt = h.run({ tables: ["maint_order"] });
    await expect(attempt).rejects.toThrow(/"maint_order" is not a table db-maintenance takes/);
    await expect(attempt).rejects.toThrow(/Known tables: [^.]*\bmaint_orders\b[^.]*\btransactions\b/);
    await expect(attempt).rejects.toThrow(/Internal tables, taken only when named: _prisma_migrations, dbjobs_ledger, [\s\S]*\bbullmq\.probe_jobs\b/);
  });
});
