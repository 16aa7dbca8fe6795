import { beforeAll, describe, expect, it } from "vitest";
import { parseHistoryQuery } from "../src/history/history-query.js";
import { type Queryable, searchHistory } from "../src/history/search-history.js";
import { historyJobsNewestFirst, historyRow, writeHistory } from "./support/history-rows.js";
import { useTestDb } from "./support/test-env.js";

/**
 * A payload search for failed jobs reads the index of rows that did not
 * complete (job_history_payload_unfinished), without walking the days, and
 * finds what one ORDER BY over every job finds.
 */
describe("job history search for failed jobs by payload", () => {
  const testDatabase = useTestDb();

  beforeAll(async () => {
    // 20,000 jobs over ten days; every 20th failed; 200 campaigns.
    const end = Date.parse("2026-06-02T12:00:00Z");
    const rows = Array.from({ length: 20_000 }, (_, index) => {
      const n = index + 1;
      return historyRow({
        queue: "bulk-messaging",
        jobId: `j-${n}`,
        state: n % 20 === 0 ? "failed" : "completed",
        finishedAt: end - n * 43_000,
        payload: { campaignId: `c-${n % 200}` },
      });
    });
    await writeHistory(testDatabase.db.pool, rows);
    await testDatabase.db.pool.query(`ANALYZE "dbjobs"."job_history"`);
  });

  /** The search's statements, as sent. */
  const recorded = async (input: Parameters<typeof parseHistoryQuery>[0]) => {
    const statements: { sql: string; values: unknown[] }[] = [];
    const pool = testDatabase.db.pool;
    const recording: Queryable = {
      query: ((sql: string, values: unknown[]) => {
        statements.push({ sql, values });
        return pool.query(sql, values);
      }) as Queryable["query"],
    };
    const page = await searchHistory(recording, parseHistoryQuery(input));
    return { page, statements };
  };

  /** Names of the partitions' indexes that belong to the parent index `name`. */
  const partitionIndexes = async (name: string) =>
    (
      await testDatabase.db.pool.query<{ relname: string }>(
        `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`,
        [`dbjobs.${name}`],
      )
    ).rows.map((row) => row.relname);

  it("finds exactly the failed rows of the campaign, newest first, without walking the days", async () => {
    const { page, statements } = await recorded({ fields: ["campaignId=c-20"], state: "failed", limit: 100 });
    const expected = await testDatabase.db.pool.query<{ job_id: string }>(
      historyJobsNewestFirst(`"payload" @> '{"campaignId":"c-20"}' AND "state" = 'failed'`),
    );
    expect(expected.rows.length).toBe(100);
    expect(page.entries.map((entry) => entry.jobId)).toEqual(expected.rows.map((row) => row.job_id));
    // No walk day by day: no look at the history's span first, and every statement asks for failed batches.
    expect(statements.some((statement) => statement.sql.includes('min("finished_at")'))).toBe(false);
    expect(statements.every((statement) => statement.values.includes("failed"))).toBe(true);
  });

  it("plans the search on the index of unfinished rows, not the whole payload index", async () => {
    const { statements } = await recorded({ fields: ["campaignId=c-40"], state: "failed" });
    const search = statements[0];
    if (!search) throw new Error("the search sent no statement");
    const client = await testDatabase.db.pool.connect();
    try {
      // Planned as the search's own unnamed statement is: with its values. No sequential scan, so that
      // the choice is between the two payload indexes.
      await client.query("SET enable_seqscan = off");
      const plan = (await client.query<{ "QUERY PLAN": string }>(`EXPLAIN ${search.sql}`, search.values)).rows.map((row) => row["QUERY PLAN"]).join("\n");
      const unfinished = await partitionIndexes("job_history_payload_unfinished");
      const whole = await partitionIndexes("job_history_payload");
      expect(unfinished.length).toBeGreaterThan(0);
      const named = (index: string) => new RegExp(`\\b${index}\\b`).test(plan);
      expect(unfinished.some(named)).toBe(true);
      expect(whole.some(named)).toBe(false);
    } finally {
      await client.query("RESET enable_seqscan");
      client.release();
    }
  });
});
