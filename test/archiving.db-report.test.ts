import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ArchiveReport } from "../src/db-report/archive.js";
import type { DefaultPartitionReport, PartitionsReport } from "../src/db-report/partitions.js";
import type { Config } from "../src/lib/config.js";
import { createPartition } from "../src/partitions/create-partition.js";
import { addUtcMonths, monthKey, monthPartitionName, utcMonthStart } from "../src/partitions/month-bounds.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig } from "./support/test-env.js";

describe("dbjobs db report: partitions, default rows, archive per year", () => {
  let database: TestDatabase;
  let client: pg.Client;
  let config: Config;
  const current = utcMonthStart(new Date());

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
    for (const offset of [0, 1, 2]) await createPartition(client, "transactions", addUtcMonths(current, offset));
    await client.query(
      `INSERT INTO transactions (type, amount, "createdAt") SELECT 'FEE', 1, $1::timestamptz + g * interval '1 minute' FROM generate_series(1, 42) g`,
      [addUtcMonths(current, 1)],
    );
    // Far-future rows with no partition: they sit in the default partition.
    await client.query(
      `INSERT INTO transactions (type, amount, "createdAt") SELECT 'FEE', 1, $1::timestamptz + g * interval '1 minute' FROM generate_series(1, 5) g`,
      [addUtcMonths(current, 40)],
    );
    // Archive: one monthly partition in 2018, plus rows for 2017 in the archive's default.
    await createPartition(client, "transactions_archive", new Date(Date.UTC(2018, 4, 1)));
    await client.query(`INSERT INTO transactions_archive (id, type, status, amount, "createdAt")
      SELECT gen_random_uuid(), 'DEPOSIT', 'COMPLETED', 1, '2018-05-03T00:00:00Z'::timestamptz + g * interval '1 minute' FROM generate_series(1, 30) g`);
    await client.query(`INSERT INTO transactions_archive (id, type, status, amount, "createdAt")
      SELECT gen_random_uuid(), 'DEPOSIT', 'COMPLETED', 1, '2017-12-31T23:00:00Z'::timestamptz + g * interval '1 second' FROM generate_series(1, 12) g`);
  });
  afterAll(async () => {
    await client.end();
    await database.drop();
  });

  it("prints the four figures as JSON", async () => {
    const { code, stdout, stderr } = await runCli(["db", "report", "--json"], cliEnv(config), 120_000);
    expect(stderr).not.toMatch(/Error/);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as { partitions: PartitionsReport; defaultPartitionRows: DefaultPartitionReport[]; archive: ArchiveReport };

    const byName = Object.fromEntries(report.partitions.partitions.map((row) => [row.partition, row]));
    expect(byName[monthPartitionName("transactions", addUtcMonths(current, 1))]).toMatchObject({ table: "transactions", rows: 42, rowsExact: true });
    expect(byName[monthPartitionName("transactions", current)]).toMatchObject({ rows: 0, from: current.toISOString().slice(0, 10) });
    expect(byName.transactions_default).toMatchObject({ rows: 5, from: null });
    expect(byName.transactions_archive_2018_05).toMatchObject({ table: "transactions_archive", rows: 30 });
    expect(byName.transactions_default?.totalBytes).toBeGreaterThan(0);
    expect(report.partitions.nextMonthWithoutPartition).toBe(monthKey(addUtcMonths(current, 3)));
    expect(report.partitions.monthsCovered).toBe(3);

    expect(report.defaultPartitionRows).toEqual([
      { table: "transactions", rows: 5, byMonth: [{ month: monthKey(addUtcMonths(current, 40)), rows: 5 }] },
      { table: "transactions_archive", rows: 12, byMonth: [{ month: "2017-12", rows: 12 }] },
    ]);
    expect(report.archive).toEqual({
      total: 42,
      byYear: [
        { year: 2017, rows: 12, exact: true },
        { year: 2018, rows: 30, exact: true },
      ],
    });
  });

  it("prints them as text for a terminal", async () => {
    const { code, stdout } = await runCli(["db", "report"], cliEnv(config), 120_000);
    expect(code).toBe(0);
    expect(stdout).toContain(`next month without a partition (transactions): ${monthKey(addUtcMonths(current, 3))}`);
    expect(stdout).toMatch(/transactions: 5 rows — WARNING/);
    expect(stdout).toMatch(/2018\s+30/);
  });
});
