import { beforeAll, describe, expect, it } from "vitest";
import { parseHistoryQuery } from "../src/history/history-query.js";
import { type Queryable, searchHistory } from "../src/history/search-history.js";
import { useTestDb } from "./support/test-env.js";

/**
 * A payload search for failed jobs reads the index of rows that did not
 * complete (job_history_payload_unfinished), in one query, and finds what one
 * ORDER BY over the whole table finds.
 */
describe("job history search for failed jobs by payload", () => {
  const testDatabase = useTestDb();

  beforeAll(async () => {
    // Takes nothing. 20,000 rows over ten days; every 20th failed; 200 campaigns.
    await testDatabase.db.pool.query(`
      INSERT INTO "dbjobs"."job_history" ("queue", "job_id", "name", "state", "attempts", "finished_at", "payload")
      SELECT 'bulk-messaging', 'j-' || n, 'bulk-messaging', CASE WHEN n % 20 = 0 THEN 'failed' ELSE 'completed' END, 1,
             '2026-06-02T12:00:00Z'::timestamptz - n * interval '43 seconds', jsonb_build_object('campaignId', 'c-' || (n % 200))
        FROM generate_series(1, 20000) AS n`);
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

  it("finds exactly the failed rows of the campaign, newest first, in one query", async () => {
    const { page, statements } = await recorded({ fields: ["campaignId=c-20"], state: "failed", limit: 100 });
    const expected = await testDatabase.db.pool.query<{ job_id: string }>(
      `SELECT "job_id" FROM "dbjobs"."job_history" WHERE "payload" @> '{"campaignId":"c-20"}' AND "state" = 'failed' ORDER BY "finished_at" DESC`,
    );
    expect(expected.rows.length).toBe(100);
    expect(page.entries.map((entry) => entry.jobId)).toEqual(expected.rows.map((row) => row.job_id));
    expect(statements).toHaveLength(1);
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
