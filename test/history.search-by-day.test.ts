import { beforeAll, describe, expect, it } from "vitest";
import { parseHistoryQuery } from "../src/history/history-query.js";
import { type HistoryEntry, searchHistory } from "../src/history/search-history.js";
import { createPartition } from "../src/partitions/create-partition.js";
import { historyJobsNewestFirst, historyRow, writeHistory } from "./support/history-rows.js";
import { useTestDb } from "./support/test-env.js";

/**
 * A payload or error-text search walks the history a day at a time, newest
 * first. Whatever the page size, paging through it must give exactly what one
 * ORDER BY over every job gives: across day (and partition) edges, with
 * jobs that finish in the same millisecond, with batches that overlap in
 * time, and within since/until.
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
    const end = Date.parse("2026-06-02T23:59:59.999Z");
    // 120 jobs, pairs 70 minutes apart from 2026-06-02 23:59:59.999 back, so they straddle six UTC days; the two of a
    // pair finish in the same millisecond, in two queues; every 3rd is campaign "walk" and failed with a "gateway" error.
    const sparse = Array.from({ length: 120 }, (_, n) =>
      historyRow({
        queue: n % 2 === 0 ? "bulk-messaging" : "invoice-totals",
        jobId: `j-${n}`,
        state: n % 3 === 0 ? "failed" : "completed",
        finishedAt: end - Math.floor(n / 2) * 70 * 60_000,
        payload: { campaignId: n % 3 === 0 ? "walk" : "other" },
        errorMessage: n % 3 === 0 ? `gateway refused request ${n}` : null,
      }),
    );
    // 400 jobs of two queues within two minutes of 2026-06-01 12:00, interleaved: batches of up to 25 that overlap in time.
    const burst = Array.from({ length: 400 }, (_, n) =>
      historyRow({
        queue: n % 2 === 0 ? "bulk-messaging" : "archiving",
        jobId: `b-${n}`,
        finishedAt: Date.parse("2026-06-01T12:00:00Z") + ((n * 7919) % 120_000),
        payload: { campaignId: n % 5 === 0 ? "walk" : "burst" },
      }),
    );
    await writeHistory(pool, [...sparse, ...burst], 25);
  });

  /** What a single query over every job returns, newest first. */
  const everything = async (where: string) =>
    (await testDatabase.db.pool.query<{ job_id: string }>(historyJobsNewestFirst(where))).rows.map((row) => row.job_id);

  const pageThrough = async (input: Parameters<typeof parseHistoryQuery>[0]) => {
    const seen: HistoryEntry[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 1000; pages++) {
      const page = await searchHistory(testDatabase.db.pool, parseHistoryQuery({ ...input, ...(cursor ? { cursor } : {}) }));
      seen.push(...page.entries);
      if (!page.nextCursor) return seen.map((entry) => entry.jobId);
      cursor = page.nextCursor;
    }
    throw new Error("more than 1000 pages");
  };

  it("pages through a payload search across days and partitions exactly as one ORDER BY does", async () => {
    const expected = await everything(`"payload" @> '{"campaignId":"walk"}'`);
    expect(expected).toHaveLength(120);
    for (const limit of [1, 3, 7, 40, 200]) expect(await pageThrough({ fields: ["campaignId=walk"], limit })).toEqual(expected);
  });

  it("pages through a search by queue, and through everything, exactly as one ORDER BY does", async () => {
    const bulk = await everything(`"queue" = 'bulk-messaging'`);
    expect(bulk).toHaveLength(260);
    for (const limit of [1, 9, 50, 1000]) expect(await pageThrough({ queue: "bulk-messaging", limit })).toEqual(bulk);
    const all = await everything("true");
    expect(all).toHaveLength(520);
    for (const limit of [13, 100]) expect(await pageThrough({ limit })).toEqual(all);
  });

  it("keeps to since and until, and finds error text the same way", async () => {
    const since = "2026-05-31T05:00:00Z";
    const until = "2026-06-02T01:00:00Z";
    expect(await pageThrough({ fields: ["campaignId=walk"], since, until, limit: 4 })).toEqual(
      await everything(`"payload" @> '{"campaignId":"walk"}' AND "finished_at" >= '${since}' AND "finished_at" < '${until}'`),
    );
    const byText = await pageThrough({ error: "GATEWAY refused", limit: 6 });
    expect(byText).toEqual(await everything(`"error_message" ILIKE '%gateway refused%'`));
    expect(await pageThrough({ queue: "invoice-totals", state: "failed", limit: 5 })).toEqual(
      await everything(`"queue" = 'invoice-totals' AND "state" = 'failed'`),
    );
    expect(byText).toHaveLength(40);
  });

  it("finds nothing, without error, outside the history's span", async () => {
    expect(await pageThrough({ fields: ["campaignId=walk"], since: "2026-07-01" })).toEqual([]);
    expect(await pageThrough({ fields: ["campaignId=walk"], until: "2026-05-01" })).toEqual([]);
    expect(await pageThrough({ fields: ["campaignId=nobody"] })).toEqual([]);
  });
});
