import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PartitionMaintenanceResult } from "../src/jobs/partition-maintenance/contract.js";
import { addUtcMonths, boundCheckName, monthPartitionName, monthRange, utcMonthStart } from "../src/partitions/month-bounds.js";
import { directJobContext, runHandler } from "./support/direct-job-context.js";
import { testConfig, useTestDb } from "./support/test-env.js";

const current = utcMonthStart(new Date());
/** Rows per month, all inserted while no month has a partition, so every one lands in the default partition. */
const backdated = [
  { month: addUtcMonths(current, -30), rows: 500 },
  { month: addUtcMonths(current, -18), rows: 300 },
  { month: addUtcMonths(current, -7), rows: 200 },
];
const future = { month: addUtcMonths(current, 7), rows: 100_000 };
const name = (month: Date) => monthPartitionName("transactions", month);

describe("partition-maintenance gives every month found in the default partition its own partition", () => {
  const testDatabase = useTestDb();
  let client: pg.Client;

  // The month's rows spread evenly from its first instant to its last millisecond, so both bounds are exercised.
  const insertMonth = async (month: Date, rows: number) => {
    const { start, end } = monthRange(month);
    await client.query(
      `INSERT INTO transactions (type, status, amount, "idempotencyKey", "createdAt")
       SELECT 'DEPOSIT', 'COMPLETED', (g % 997) + 0.37, CASE WHEN g % 100 = 0 THEN 'rescue-' || $3::text || '-' || g END,
              $1::timestamptz + ((g - 1)::float8 / greatest($4::int - 1, 1)) * ($2::timestamptz - $1::timestamptz - interval '1 millisecond')
         FROM generate_series(1, $4::int) g`,
      [start, end, start.toISOString().slice(0, 7), rows],
    );
  };

  // Order-independent: row count, amount total, and the sum of a hash of every row's text.
  const totals = async () =>
    (
      await client.query<{ rows: string; amount: string; hash: string }>(
        `SELECT count(*)::text AS rows, sum(amount)::text AS amount, sum(hashtextextended(t::text, 0))::text AS hash FROM transactions t`,
      )
    ).rows[0];

  const rowsByPartition = async () =>
    Object.fromEntries(
      (
        await client.query<{ partition: string; n: number }>(
          "SELECT tableoid::regclass::text AS partition, count(*)::int AS n FROM transactions GROUP BY 1 ORDER BY 1",
        )
      ).rows.map((row) => [row.partition, row.n]),
    );

  const partitionNames = async () =>
    (
      await client.query<{ name: string }>(
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'transactions'::regclass ORDER BY 1",
      )
    ).rows.map((row) => row.name);

  const run = (monthsAhead = 3) => {
    const { context, lines } = directJobContext(testDatabase.db, testConfig(testDatabase.url), { logLevel: "info" });
    return { lines, result: runHandler("partition-maintenance", { monthsAhead }, context) as Promise<PartitionMaintenanceResult> };
  };

  beforeAll(async () => {
    client = new pg.Client({ connectionString: testDatabase.url });
    await client.connect();
    for (const { month, rows } of [...backdated, future]) await insertMonth(month, rows);
  });
  afterAll(async () => {
    await client.end();
  });

  it("moves 1,000 backdated rows over 3 past months and 100,000 future rows into their months' partitions, losing none", async () => {
    expect(await partitionNames()).toEqual(["transactions_default"]);
    expect(await rowsByPartition()).toEqual({ transactions_default: 101_000 });
    const before = await totals();

    const { result } = run();
    const first = await result;

    const premade = [0, 1, 2, 3].map((offset) => name(addUtcMonths(current, offset)));
    expect(first.created).toEqual([...backdated.map(({ month }) => name(month)), ...premade, name(future.month)]);
    expect(first.movedFromDefault).toBe(101_000);
    expect(first.defaultRows).toBe(0);
    expect(first.defaultRowsByMonth).toEqual([]);
    expect(first.warning).toBeUndefined();

    // Every month's rows in that month's partition, none left in the default: a skipped month fails here.
    expect(await rowsByPartition()).toEqual(Object.fromEntries([...backdated, future].map(({ month, rows }) => [name(month), rows])));
    expect(await totals()).toEqual(before);

    // Each new partition has every index of the parent, and the bound CHECK the archiving fast path relies on.
    for (const { month } of [...backdated, future]) {
      const { rows } = await client.query<{ indexes: number; attached: number; check: boolean }>(
        `SELECT (SELECT count(*) FROM pg_index WHERE indrelid = 'transactions'::regclass)::int AS indexes,
                (SELECT count(*) FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indexrelid WHERE x.indrelid = $1::regclass)::int AS attached,
                EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2 AND convalidated) AS check`,
        [name(month), boundCheckName(name(month))],
      );
      expect(rows[0]?.attached).toBe(rows[0]?.indexes);
      expect(rows[0]?.check).toBe(true);
    }
    // The moved rows keep their idempotency keys reserved: a duplicate is still refused.
    await expect(
      client.query(`INSERT INTO transactions (type, amount, "idempotencyKey", "createdAt") VALUES ('DEPOSIT', 1, $1, now())`, [
        `rescue-${future.month.toISOString().slice(0, 7)}-100`,
      ]),
    ).rejects.toMatchObject({ code: "23505" });
  });

  it("changes nothing when run again", async () => {
    const before = await totals();
    const partitions = await partitionNames();
    const placed = await rowsByPartition();
    const second = await run().result;
    expect(second).toMatchObject({ created: [], movedFromDefault: 0, defaultRows: 0 });
    expect(second.warning).toBeUndefined();
    expect(await partitionNames()).toEqual(partitions);
    expect(await rowsByPartition()).toEqual(placed);
    expect(await totals()).toEqual(before);
  });

  it("leaves a month whose lock is not granted in the default, names it and the command in the warning, and moves it on the next run", async () => {
    const blocked = addUtcMonths(current, -40);
    await insertMonth(blocked, 120);
    const before = await totals();
    // A reader holding the default partition in an open transaction: the month's ATTACH cannot get its ACCESS EXCLUSIVE lock.
    const reader = new pg.Client({ connectionString: testDatabase.url });
    await reader.connect();
    try {
      await reader.query("BEGIN");
      await reader.query("SELECT count(*) FROM transactions_default");
      const { result, lines } = run();
      const stuck = await result;
      expect(stuck.created).toEqual([]);
      expect(stuck.defaultRows).toBe(120);
      const month = blocked.toISOString().slice(0, 7);
      expect(stuck.defaultRowsByMonth).toEqual([{ month, rows: 120 }]);
      expect(stuck.warning).toContain(`${month} (120 rows: its locks were not granted within 5000 ms)`);
      expect(stuck.warning).toContain(`npx dbjobs enqueue partition-maintenance --data '{"table":"transactions"}' --wait`);
      expect(stuck.warning).not.toMatch(/monthsAhead/);
      expect(lines().some((line) => line.level === 40 && line.msg === stuck.warning)).toBe(true);
      expect(await totals()).toEqual(before);
    } finally {
      await reader.end();
    }

    const next = await run().result;
    expect(next.created).toEqual([name(blocked)]);
    expect(next.movedFromDefault).toBe(120);
    expect(next.defaultRows).toBe(0);
    expect(next.warning).toBeUndefined();
    expect((await rowsByPartition())[name(blocked)]).toBe(120);
    expect(await totals()).toEqual(before);
  });
});
