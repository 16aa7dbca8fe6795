import { cpSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { defaultMigrationsDir, migrate, readMigrations } from "../src/lib/migrate.js";
import { withDatabase } from "./support/services.js";
import { createTestDatabase, type TestDatabase } from "./support/test-env.js";

describe("dbjobs migrate", () => {
  const fresh = withDatabase(inject("postgresAdminUrl"), `dbjobs_t_${inject("runId")}_migrate_fresh`);
  let clone: TestDatabase;

  beforeAll(async () => {
    clone = await createTestDatabase();
  });
  afterAll(async () => {
    await clone.drop();
    const admin = new pg.Client({ connectionString: inject("postgresAdminUrl") });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${new URL(fresh).pathname.slice(1)}" WITH (FORCE)`);
    await admin.end();
  });

  it("creates a missing database, applies every migration and records it as prisma migrate deploy does", async () => {
    const result = await migrate({ url: fresh });
    const onDisk = await readMigrations();
    expect(result.createdDatabase).toBe(true);
    expect(result.applied).toEqual(onDisk.map((migration) => migration.name));

    const client = new pg.Client({ connectionString: fresh });
    await client.connect();
    const { rows } = await client.query(
      "SELECT migration_name, checksum, finished_at, applied_steps_count, rolled_back_at FROM _prisma_migrations ORDER BY migration_name",
    );
    await client.end();
    expect(rows.map((row) => [row.migration_name, row.checksum])).toEqual(onDisk.map((migration) => [migration.name, migration.checksum]));
    for (const row of rows) {
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.applied_steps_count).toBe(1);
      expect(row.rolled_back_at).toBeNull();
    }
  });

  it("changes nothing when run again", async () => {
    const result = await migrate({ url: clone.url });
    expect(result.applied).toEqual([]);
    expect(result.createdDatabase).toBe(false);
  });

  it("refuses a migration edited after it was applied, naming it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dbjobs-migrations-"));
    cpSync(defaultMigrationsDir, dir, { recursive: true });
    const [first] = await readMigrations(dir);
    writeFileSync(join(dir, first!.name, "migration.sql"), `${first!.sql}\n-- edited\n`);
    await expect(migrate({ url: clone.url, migrationsDir: dir })).rejects.toThrow(new RegExp(`Migration "${first!.name}" was edited after it was applied`));
  });

  it("creates transactions partitioned by month with a default partition that catches rows", async () => {
    const client = new pg.Client({ connectionString: clone.url });
    await client.connect();
    try {
      const { rows: parent } = await client.query(`SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'transactions'::regclass`);
      expect(parent[0]?.partstrat).toBe("r");
      await client.query(`INSERT INTO transactions (type, amount, "createdAt") VALUES ('DEPOSIT', 10.50, '2031-05-05T00:00:00Z')`);
      const { rows } = await client.query(`SELECT tableoid::regclass::text AS partition FROM transactions`);
      expect(rows).toEqual([{ partition: "transactions_default" }]);
    } finally {
      await client.end();
    }
  });

  it("keeps idempotency keys unique across partitions", async () => {
    const client = new pg.Client({ connectionString: clone.url });
    await client.connect();
    try {
      await client.query(`INSERT INTO transactions (type, amount, "idempotencyKey", "createdAt") VALUES ('DEPOSIT', 1, 'same-key', '2020-01-01')`);
      await expect(
        client.query(`INSERT INTO transactions (type, amount, "idempotencyKey", "createdAt") VALUES ('DEPOSIT', 1, 'same-key', '2031-01-01')`),
      ).rejects.toMatchObject({ code: "23505" });
    } finally {
      await client.end();
    }
  });
});
