import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AnalyzeCandidate } from "../src/db-catalog/analyze-candidates.js";
import type { DefaultPartitionReport, PartitionsReport } from "../src/db-report/partitions.js";
import type { TableSize } from "../src/db-report/table-sizes.js";
import type { Config } from "../src/lib/config.js";
import { addUtcMonths, monthPartitionName, utcMonthStart } from "../src/partitions/month-bounds.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig } from "./support/test-env.js";

interface Report {
  partitions: PartitionsReport;
  defaultPartitionRows: DefaultPartitionReport[];
  tableSizes: TableSize[];
  analyzeOverdue: AnalyzeCandidate[];
}

/** The first run as `npm start` makes it: migrate, then seed-demo, then an operator's `db report`. */
describe("seed-demo: a clean first run", () => {
  let database: TestDatabase;
  let config: Config;
  // SLOW_QUERY_MS=1 makes every statement of the seed slow: none may be printed as a slow-query WARN.
  const env = () => cliEnv(config, { LOG_FORMAT: "json", LOG_LEVEL: "info", SLOW_QUERY_MS: "1" });

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
  });
  afterAll(async () => {
    await database?.drop();
  });

  it("leaves no demo row in the default partition, analyzes what it seeded, and logs no slow query", async () => {
    const migrated = await runCli(["migrate"], env(), 120_000);
    expect(migrated.code, migrated.stderr).toBe(0);
    const seeded = await runCli(["seed-demo"], env(), 120_000);
    expect(seeded.code, seeded.stderr).toBe(0);
    expect(seeded.stdout).toContain("200 transactions");
    expect(seeded.stdout + seeded.stderr).not.toMatch(/slow query/i);
    expect(seeded.stderr).not.toMatch(/"level":(40|50)/);

    const text = await runCli(["db", "report"], env(), 120_000);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).not.toContain("WARNING");

    const json = await runCli(["db", "report", "--json"], env(), 120_000);
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as Report;

    expect(report.defaultPartitionRows.find((entry) => entry.table === "transactions")).toEqual({ table: "transactions", rows: 0, byMonth: [] });
    const currentMonth = monthPartitionName("transactions", utcMonthStart(new Date()));
    expect(report.partitions.partitions.find((row) => row.partition === currentMonth)).toMatchObject({ table: "transactions", rows: 200 });
    expect(report.partitions.monthsCovered).toBeGreaterThanOrEqual(1);

    // Row estimates come from pg_class.reltuples, which only an ANALYZE (or VACUUM) fills in.
    const rows = Object.fromEntries(report.tableSizes.map((table) => [table.table, table.estimatedRows]));
    expect(rows).toMatchObject({ patients: 1000, invoices: 2000, invoice_line_items: 10_000, users: 200, escrow_accounts: 20, transactions: 200 });
    // Analyzed after the seed's own changes were counted, so only the partitioned parents (always listed) remain.
    expect(report.analyzeOverdue.filter((table) => !table.reason.startsWith("partitioned parent")).map((table) => table.table)).toEqual([]);
  }, 180_000);

  it("run again, moves demo rows an older seed left in the default partition into their month, losing none", async () => {
    const past = addUtcMonths(utcMonthStart(new Date()), -2);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      // What a seed without partitions left behind: rows of a month that has no partition.
      await client.query(
        `INSERT INTO transactions (type, amount, "createdAt", "idempotencyKey") SELECT 'FEE', 2, $1::timestamptz + g * interval '1 hour', 'old-seed-' || g FROM generate_series(1, 30) g`,
        [past],
      );
      const before = await client.query<{ n: number; total: string }>(`SELECT count(*)::int AS n, sum(amount)::text AS total FROM transactions`);

      const seeded = await runCli(["seed-demo", "--json"], env(), 120_000);
      expect(seeded.code, seeded.stderr).toBe(0);
      expect(JSON.parse(seeded.stdout)).toMatchObject({ transactions: 230, partitionsCreated: [monthPartitionName("transactions", past)] });

      const { rows: inDefault } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM transactions_default`);
      expect(inDefault[0]?.n).toBe(0);
      const { rows: inPast } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${monthPartitionName("transactions", past)}`);
      expect(inPast[0]?.n).toBe(30);
      const after = await client.query<{ n: number; total: string }>(`SELECT count(*)::int AS n, sum(amount)::text AS total FROM transactions`);
      expect(after.rows[0]).toEqual(before.rows[0]);
    } finally {
      await client.end();
    }
  }, 180_000);
});
