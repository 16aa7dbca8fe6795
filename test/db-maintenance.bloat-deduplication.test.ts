import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { estimateIndexBloat } from "../src/db-catalog/index-bloat.js";
import { resolveScope } from "../src/db-catalog/own-tables.js";
import { createMaintenanceHarness, indexState, type MaintenanceHarness } from "./support/db-maintenance-harness.js";

/**
 * Without pgstattuple, bloat is estimated from planner statistics. A btree of
 * few distinct keys is stored deduplicated (PostgreSQL 13+): a fresh build is
 * about 6 bytes per row instead of 20, so an estimate that ignores that
 * takes a 4× bloated index for a healthy one (about 1.3×).
 */
describe("db-maintenance's statistics estimate knows btree deduplication", () => {
  let h: MaintenanceHarness;
  let client: pg.Client;
  const table = "maint_dupkeys";
  const indexes = [`${table}_bucket_idx`, `${table}_account_voided_idx`];
  /** Bloat measured against the index rebuilt, and by pgstatindex's leaf density, per index. */
  const truth: Record<string, { rebuilt: number; pgstatindex: number }> = {};

  beforeAll(async () => {
    h = await createMaintenanceHarness();
    client = new pg.Client({ connectionString: h.database.url });
    await client.connect();
    // 37 buckets and 500 accounts over 200,000 rows; voidedAt is set on 1% of rows, NULL elsewhere.
    await client.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, bucket int NOT NULL, account int NOT NULL, "voidedAt" timestamptz) WITH (autovacuum_enabled = false)`,
    );
    await client.query(`CREATE INDEX ${indexes[0]} ON ${table} (bucket)`);
    await client.query(`CREATE INDEX ${indexes[1]} ON ${table} (account, "voidedAt")`);
    await client.query(`INSERT INTO ${table}
      SELECT g, g % 37, g % 500, CASE WHEN g % 100 = 0 THEN '2025-01-01'::timestamptz + g * interval '1 minute' END
        FROM generate_series(1, 200000) g`);
    // Three rows in four go, spread over every key, so the posting lists shrink and the pages stay.
    await client.query(`DELETE FROM ${table} WHERE id % 4 <> 0`);
    await client.query(`VACUUM ${table}`);
    await client.query(`ANALYZE ${table}`);

    const measured = await estimateIndexBloat(client, await resolveScope(client, [table]), { method: "pgstatindex" });
    for (const name of indexes) {
      const bytes = (await indexState(h.database.url, name))?.bytes ?? 0;
      const [{ def } = { def: "" }] = (await client.query<{ def: string }>("SELECT pg_get_indexdef(to_regclass($1)) AS def", [name])).rows;
      await client.query(def.replace(/INDEX \S+ ON/, "INDEX maint_dupkeys_rebuilt ON"));
      const rebuilt = (await indexState(h.database.url, "maint_dupkeys_rebuilt"))?.bytes ?? 1;
      await client.query("DROP INDEX maint_dupkeys_rebuilt");
      truth[name] = { rebuilt: bytes / rebuilt, pgstatindex: measured.indexes.find((index) => index.index === name)?.ratio ?? 0 };
    }
  });

  afterAll(async () => {
    await client?.end();
    await h?.close();
  });

  it("estimates each duplicate-heavy index within 25% of its true bloat", async () => {
    // The set-up really bloated them: this is what the estimate must find.
    for (const name of indexes) {
      expect(truth[name]?.rebuilt).toBeGreaterThan(3);
      expect(truth[name]?.pgstatindex).toBeGreaterThan(3);
    }
    const estimated = await estimateIndexBloat(client, await resolveScope(client, [table]), { method: "statistics" });
    expect(estimated.method).toBe("statistics");
    for (const name of indexes) {
      const ratio = estimated.indexes.find((index) => index.index === name)?.ratio ?? 0;
      const { rebuilt, pgstatindex } = truth[name] ?? { rebuilt: 0, pgstatindex: 0 };
      const seen = `${name}: estimated ${ratio}, rebuilt ${rebuilt.toFixed(2)}, pgstatindex ${pgstatindex}`;
      expect(Math.abs(ratio / rebuilt - 1), seen).toBeLessThanOrEqual(0.25);
      expect(Math.abs(ratio / pgstatindex - 1), seen).toBeLessThanOrEqual(0.25);
    }
  });

  it("without pgstattuple, a dry run at the default minBloatRatio plans to rebuild them", async () => {
    await h.sql("DROP EXTENSION IF EXISTS pgstattuple");
    const before = await indexState(h.database.url, indexes[0] as string);
    const result = await h.run({ reindex: true, analyze: false, dryRun: true, tables: [table] });

    expect(result.bloatMethod).toBe("statistics");
    for (const name of indexes) {
      expect(result.planned).toContainEqual(
        expect.objectContaining({ action: "reindex", target: name, estimate: expect.objectContaining({ method: "statistics" }) }),
      );
    }
    expect(result.reindexed).toEqual([]);
    expect(await indexState(h.database.url, indexes[0] as string)).toEqual(before);
  });
});
