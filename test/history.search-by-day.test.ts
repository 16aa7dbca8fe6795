import { beforeAll, describe, expect, it } from "vitest";
import { parseHistoryQuery } from "../src/history/history-query.js";
import { type HistoryEntry, searchHistory } from "../src/history/search-history.js";
import { createPartition } from "../src/partitions/create-partition.js";
import { useTestDb } from "./support/test-env.js";

/**
 * A payload or error-text search walks the history a day at a time, newest
 * first. Whatever the page size, paging through it must give exactly what one
 * ORDER BY over the whole table gives: across day (and partition) edges, with
 * rows that differ only in microseconds, and within since/until.
 */
describe("job history search, day by day", () => {
  const testDatabase = useTestDb();

  beforeAll(async () => {
    const pool = testDatabase.db.pool;
    const client = await pool.connect();
    try {
      // Two of the six days get partitions of their own; the rest land in the default partition.
      for (const day of ["2026-05-29", "2026-05-31"]) await createPartition(client, "dbjobs.job_history", new Date(`${day}T00:00:00Z`));
    } finally {
      client.release();
    }
    // Takes nothing. 120 rows, 70 minutes apart from 2026-06-02 23:59:59.999999 back, so they straddle six UTC days;
    // every 3rd is campaign "walk" and failed with a "gateway" error; pairs 0.5 µs-close share a millisecond.
    await pool.query(`
      INSERT INTO "dbjobs"."job_history" ("queue", "job_id", "name", "state", "attempts", "finished_at", "payload", "error_message")
      SELECT 'bulk-messaging', 'j-' || n, 'bulk-messaging', CASE WHEN n % 3 = 0 THEN 'failed' ELSE 'completed' END, 1,
             '2026-06-02T23:59:59.999999Z'::timestamptz - (n / 2) * interval '70 minutes' - (n % 2) * interval '1 microsecond',
             jsonb_build_object('campaignId', CASE WHEN n % 3 = 0 THEN 'walk' ELSE 'other' END),
             CASE WHEN n % 3 = 0 THEN 'gateway refused request ' || n END
        FROM generate_series(0, 119) AS n`);
  });

  /** What a single query over the whole table returns, newest first. */
  const everything = async (where: string) =>
    (
      await testDatabase.db.pool.query<{ jobId: string }>(
        `SELECT "job_id" AS "jobId" FROM "dbjobs"."job_history" WHERE ${where} ORDER BY "finished_at" DESC, "queue" DESC, "job_id" DESC`,
      )
    ).rows.map((row) => row.jobId);

  const pageThrough = async (input: Parameters<typeof parseHistoryQuery>[0]) => {
    const seen: HistoryEntry[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 100; pages++) {
      const page = await searchHistory(testDatabase.db.pool, parseHistoryQuery({ ...input, ...(cursor ? { cursor } : {}) }));
      seen.push(...page.entries);
      if (!page.nextCursor) return seen.map((entry) => entry.jobId);
      cursor = page.nextCursor;
    }
    throw new Error("more than 100 pages");
  };

  it("pages through a payload search across days and partitions exactly as one ORDER BY does", async () => {
    const expected = await everything(`"payload" @> '{"campaignId":"walk"}'`);
    expect(expected).toHaveLength(40);
    for (const limit of [1, 3, 7, 40, 100]) expect(await pageThrough({ fields: ["campaignId=walk"], limit })).toEqual(expected);
  });

  it("keeps to since and until, and finds error text the same way", async () => {
    const since = "2026-05-31T05:00:00Z";
    const until = "2026-06-02T01:00:00Z";
    expect(await pageThrough({ fields: ["campaignId=walk"], since, until, limit: 4 })).toEqual(
      await everything(`"payload" @> '{"campaignId":"walk"}' AND "finished_at" >= '${since}' AND "finished_at" < '${until}'`),
    );
    const byText = await pageThrough({ error: "GATEWAY refused", limit: 6 });
    expect(byText).toEqual(await everything(`"error_message" ILIKE '%gateway refused%'`));
    expect(byText).toHaveLength(40);
  });

  it("finds nothing, without error, outside the history's span", async () => {
    expect(await pageThrough({ fields: ["campaignId=walk"], since: "2026-07-01" })).toEqual([]);
    expect(await pageThrough({ fields: ["campaignId=walk"], until: "2026-05-01" })).toEqual([]);
    expect(await pageThrough({ fields: ["campaignId=nobody"] })).toEqual([]);
  });
});
