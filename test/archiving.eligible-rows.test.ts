import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ArchivingDryRunResult, ArchivingResult } from "../src/jobs/archiving/contract.js";
import { nextBatchSize } from "../src/jobs/archiving/move-batch.js";
import { archiveCutoff } from "../src/jobs/archiving/plan.js";
import type { Db } from "../src/lib/db.js";
import { createPartition } from "../src/partitions/create-partition.js";
import { addUtcMonths, monthKey, utcMonthStart } from "../src/partitions/month-bounds.js";
import { directJobContext, runHandler } from "./support/direct-job-context.js";
import { testConfig, useTestDb } from "./support/test-env.js";

/** Calls the handler as the worker would, on a real database. */
function directContext(db: Db, url: string) {
  return directJobContext(db, testConfig(url), { logLevel: "info" });
}

// Order-independent checksum of live ∪ archive: row count, distinct ids, and the sum of a hash of every row's text.
const checksumSql = `
SELECT count(*)::int AS rows, count(DISTINCT id)::int AS ids, sum(hashtextextended(r::text, 0))::text AS hash
  FROM (SELECT * FROM transactions UNION ALL SELECT * FROM transactions_archive) r`;

describe("archiving moves exactly the eligible rows", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let client: pg.Client;
  const now = new Date();
  const cutoff = archiveCutoff(now, 7);
  // A whole month nine years back, every row final: the fast path's month.
  const fastMonth = addUtcMonths(utcMonthStart(cutoff), -24);
  // A month eight years back with a mix of states: the batch path's month.
  const mixedMonth = addUtcMonths(utcMonthStart(cutoff), -12);
  // Ten years back with no partition of its own: those rows sit in the default partition.
  const defaultMonth = addUtcMonths(utcMonthStart(cutoff), -36);
  const expectedIds = new Set<string>();

  const insert = async (createdAt: Date, status: string, count: number, options: { nextRetryAt?: Date; eligible: boolean }) => {
    const { rows } = await client.query<{ id: string }>(
      `INSERT INTO transactions (type, status, amount, "nextRetryAt", "idempotencyKey", "createdAt")
       SELECT 'DEPOSIT', $2::"TransactionStatus", (g % 997) + 0.25, $3, 'k-' || gen_random_uuid(), $1::timestamptz + g * interval '1 second'
         FROM generate_series(1, $4) g RETURNING id`,
      [createdAt, status, options.nextRetryAt ?? null, count],
    );
    if (options.eligible) for (const row of rows) expectedIds.add(row.id);
  };

  beforeAll(async () => {
    db = testDatabase.db;
    client = new pg.Client({ connectionString: testDatabase.url });
    await client.connect();
    for (const month of [fastMonth, mixedMonth, addUtcMonths(utcMonthStart(cutoff), -1), utcMonthStart(cutoff), utcMonthStart(now)]) {
      await createPartition(client, "transactions", month);
    }
    await insert(fastMonth, "COMPLETED", 400, { eligible: true });
    await insert(addUtcMonths(fastMonth, 0), "CANCELLED", 100, { eligible: true });
    await insert(mixedMonth, "COMPLETED", 700, { eligible: true });
    await insert(mixedMonth, "CANCELLED", 300, { eligible: true });
    await insert(mixedMonth, "FAILED", 50, { eligible: false }); // not in the default statuses
    await insert(mixedMonth, "PENDING", 40, { eligible: false });
    await insert(mixedMonth, "RETRYING", 30, { nextRetryAt: new Date(now.getTime() + 60_000), eligible: false });
    await insert(mixedMonth, "COMPLETED", 20, { nextRetryAt: new Date(now.getTime() - 60_000), eligible: false }); // a retry is still due
    await insert(defaultMonth, "COMPLETED", 150, { eligible: true });
    // Either side of the cutoff, within seconds.
    await insert(new Date(cutoff.getTime() - 3600_000), "COMPLETED", 60, { eligible: true });
    await insert(new Date(cutoff.getTime() + 60_000), "COMPLETED", 70, { eligible: false });
    await insert(utcMonthStart(now), "COMPLETED", 80, { eligible: false });
  });
  afterAll(async () => {
    await client.end();
  });

  it("reports counts per month in a dry run and changes nothing", async () => {
    const before = (await client.query(checksumSql)).rows[0];
    const { context } = directContext(db, testDatabase.url);
    const result = (await runHandler("archiving", { dryRun: true }, context)) as ArchivingDryRunResult;
    expect(result.dryRun).toBe(true);
    expect(result.wouldMove).toBe(expectedIds.size);
    const byMonth = Object.fromEntries(result.months.map((month) => [month.month, month]));
    expect(byMonth[monthKey(fastMonth)]).toMatchObject({ live: 500, archived: 0, eligible: 500, path: "fast" });
    expect(byMonth[monthKey(mixedMonth)]).toMatchObject({ live: 1140, eligible: 1000, path: "batches" });
    expect(byMonth[monthKey(defaultMonth)]).toMatchObject({ live: 150, eligible: 150, path: "batches" });
    expect((await client.query(checksumSql)).rows[0]).toEqual(before);
    const { rows } = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM transactions_archive");
    expect(rows[0]?.n).toBe(0);
  });

  it("moves every eligible row and nothing else, takes the fast path for the whole old month, and verifies", async () => {
    const before = (await client.query(checksumSql)).rows[0];
    const { context, progress, lines } = directContext(db, testDatabase.url);
    const result = (await runHandler("archiving", { batchSize: 100 }, context)) as ArchivingResult;

    expect(result).toMatchObject({ moved: expectedIds.size, partitionsMoved: 1, verified: true, path: "fast+batches" });
    expect(result.batches).toBeGreaterThanOrEqual(12);
    expect(result.fastPath).toEqual([expect.objectContaining({ taken: true, rows: 500, mergedFromArchive: 0 })]);
    expect(result.verification.mismatches).toEqual([]);

    const archived = (await client.query<{ id: string }>("SELECT id FROM transactions_archive")).rows.map((row) => row.id);
    expect(new Set(archived)).toEqual(expectedIds);
    const live = (await client.query<{ id: string }>("SELECT id FROM transactions")).rows.map((row) => row.id);
    expect(live.filter((id) => expectedIds.has(id))).toEqual([]);
    expect((await client.query(checksumSql)).rows[0]).toEqual(before);

    // The month's partition now belongs to the archive, renamed, with its rows untouched.
    const { rows: parents } = await client.query<{ parent: string; child: string }>(
      `SELECT i.inhparent::regclass::text AS parent, i.inhrelid::regclass::text AS child FROM pg_inherits i WHERE i.inhrelid::regclass::text = $1`,
      [`transactions_archive_${monthKey(fastMonth).replace("-", "_")}`],
    );
    expect(parents).toEqual([{ parent: "transactions_archive", child: `transactions_archive_${monthKey(fastMonth).replace("-", "_")}` }]);

    const last = progress.at(-1) as Record<string, unknown>;
    expect(last).toMatchObject({ moved: expectedIds.size, total: expectedIds.size });
    expect(last).toHaveProperty("rowsPerSecond");
    expect(last).toHaveProperty("etaSeconds");
    expect(progress.filter((entry) => entry.phase === "batches").length).toBe(result.batches);
    expect(lines().some((line) => String(line.msg).includes("verified"))).toBe(true);
  });

  it("finds nothing to do when run again", async () => {
    const { context } = directContext(db, testDatabase.url);
    const result = (await runHandler("archiving", {}, context)) as ArchivingResult;
    expect(result).toMatchObject({ moved: 0, partitionsMoved: 0, batches: 0, verified: true, path: "none" });
  });

  it("takes FAILED rows when asked, stops at maxRows, and leaves rows with a retry due", async () => {
    const { context } = directContext(db, testDatabase.url);
    const capped = (await runHandler("archiving", { statuses: ["FAILED"], maxRows: 30, batchSize: 100 }, context)) as ArchivingResult;
    expect(capped.moved).toBe(30);
    const rest = (await runHandler("archiving", { statuses: ["FAILED", "COMPLETED"] }, context)) as ArchivingResult;
    expect(rest.moved).toBe(20);
    const { rows } = await client.query<{ status: string; n: number }>(
      `SELECT status::text, count(*)::int AS n FROM transactions WHERE "createdAt" < $1 GROUP BY 1 ORDER BY 1`,
      [cutoff],
    );
    expect(rows).toEqual([
      { status: "COMPLETED", n: 20 },
      { status: "PENDING", n: 40 },
      { status: "RETRYING", n: 30 },
    ]);
  });

  it("merges rows an earlier run archived into the month's partition when the fast path takes it", async () => {
    const month = addUtcMonths(utcMonthStart(cutoff), -30);
    await createPartition(client, "transactions", month);
    await createPartition(client, "transactions_archive", month);
    await client.query(
      `INSERT INTO transactions (type, status, amount, "createdAt") SELECT 'FEE', 'COMPLETED', 3, $1::timestamptz + g * interval '1 minute' FROM generate_series(1, 300) g`,
      [month],
    );
    // Earlier batches archived ten rows of the month into the archive's partition for it.
    await client.query(
      `INSERT INTO transactions_archive (id, type, status, amount, "createdAt") SELECT gen_random_uuid(), 'FEE', 'COMPLETED', 4, $1::timestamptz + g * interval '1 hour' FROM generate_series(1, 10) g`,
      [month],
    );
    const before = (await client.query(checksumSql)).rows[0];
    const { context } = directContext(db, testDatabase.url);
    const result = (await runHandler("archiving", {}, context)) as ArchivingResult;
    expect(result).toMatchObject({ moved: 300, partitionsMoved: 1, batches: 0, path: "fast", verified: true });
    expect(result.fastPath).toEqual([expect.objectContaining({ taken: true, rows: 300, mergedFromArchive: 10 })]);
    expect((await client.query(checksumSql)).rows[0]).toEqual(before);
    const { rows } = await client.query<{ partition: string; n: number }>(
      `SELECT tableoid::regclass::text AS partition, count(*)::int AS n FROM transactions_archive WHERE "createdAt" >= $1 AND "createdAt" < $2 GROUP BY 1`,
      [month, addUtcMonths(month, 1)],
    );
    expect(rows).toEqual([{ partition: `transactions_archive_${monthKey(month).replace("-", "_")}`, n: 310 }]);
  });

  it("shrinks batches that hold their locks too long and grows quick ones back, within 100..batchSize", () => {
    const limits = { batchSize: 5000, maxBatchMs: 300 };
    expect(nextBatchSize(5000, 600, limits)).toBe(2000);
    expect(nextBatchSize(150, 10_000, limits)).toBe(100);
    expect(nextBatchSize(2000, 100, limits)).toBe(3000);
    expect(nextBatchSize(4000, 50, limits)).toBe(5000);
    expect(nextBatchSize(3000, 200, limits)).toBe(3000);
  });
});
