import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseHistoryQuery } from "../src/history/history-query.js";
import { searchHistory } from "../src/history/search-history.js";
import { defaultMigrationsDir, migrate } from "../src/lib/migrate.js";
import { withDatabase } from "./support/services.js";

const batches = "20261208000000_job_history_batches";

/**
 * Upgrading a database whose history is a row per job to batch rows: every
 * job is kept with its fields, in batches of one queue, state, fingerprint
 * and minute, in the same daily partitions, and the search finds them.
 */
describe("migration job_history_batches on a database with history", () => {
  const adminUrl = inject("postgresAdminUrl");
  const name = `dbjobs_t_${inject("runId")}_history_upgrade`;
  let before: string;
  let client: pg.Client;

  beforeAll(async () => {
    before = mkdtempSync(join(tmpdir(), "dbjobs-migrations-before-"));
    cpSync(defaultMigrationsDir, before, { recursive: true });
    for (const entry of readdirSync(before).filter((entry) => entry >= batches)) rmSync(join(before, entry), { recursive: true });
    const url = withDatabase(adminUrl, name);
    expect((await migrate({ url, migrationsDir: before })).applied).not.toContain(batches);
    client = new pg.Client({ connectionString: url });
    await client.connect();
    // Takes nothing. A day partition, 30 jobs 7 s apart on it (every 3rd failed in one of two groups, every 5th with a
    // given id), and one job of a day without a partition (in the default).
    await client.query(`
      CREATE TABLE "dbjobs"."job_history_2026_12_07" PARTITION OF "dbjobs"."job_history" FOR VALUES FROM ('2026-12-07') TO ('2026-12-08');
      INSERT INTO "dbjobs"."job_history" ("queue", "job_id", "name", "state", "attempts", "enqueued_at", "started_at", "finished_at", "payload", "result",
                                          "error_class", "error_message", "error_fingerprint")
      SELECT 'archiving', CASE WHEN n % 5 = 0 THEN 'given-' || n ELSE n::text END, 'archiving', CASE WHEN n % 3 = 0 THEN 'failed' ELSE 'completed' END,
             1 + (n % 3), '2026-12-07T09:00:00.123Z', '2026-12-07T09:30:00.456Z', '2026-12-07T10:00:00Z'::timestamptz + n * interval '7 seconds',
             jsonb_build_object('n', n), CASE WHEN n % 3 <> 0 THEN jsonb_build_object('moved', n) END,
             CASE WHEN n % 3 = 0 THEN 'Error' END, CASE WHEN n % 3 = 0 THEN 'boom ' || n END, CASE WHEN n % 3 = 0 THEN '00000000000' || (n % 2) END
        FROM generate_series(1, 30) AS n;
      INSERT INTO "dbjobs"."job_history" ("queue", "job_id", "name", "state", "attempts", "finished_at", "payload")
      VALUES ('invoice-totals', 'late', 'invoice-totals', 'completed', 1, '2027-01-01T00:00:00Z', '{}');`);
    expect((await migrate({ url })).applied).toEqual([batches]);
  });
  afterAll(async () => {
    await client?.end();
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
    rmSync(before, { recursive: true, force: true });
  });

  it("keeps every job and its fields, one row per job in the view", async () => {
    const { rows } = await client.query(`SELECT * FROM "dbjobs"."job_history_jobs" WHERE "job_id" IN ('3', 'given-10') ORDER BY "job_id"`);
    expect(rows).toEqual([
      {
        queue: "archiving",
        job_id: "3",
        name: "archiving",
        state: "failed",
        attempts: 1,
        enqueued_at: new Date("2026-12-07T09:00:00.123Z"),
        started_at: new Date("2026-12-07T09:30:00.456Z"),
        finished_at: new Date("2026-12-07T10:00:21Z"),
        payload: { n: 3 },
        result: null,
        error_class: "Error",
        error_message: "boom 3",
        error_fingerprint: "000000000001",
        batch_id: expect.any(String),
      },
      expect.objectContaining({ job_id: "given-10", state: "completed", attempts: 2, result: { moved: 10 }, error_fingerprint: null }),
    ]);
    const { rows: counted } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM "dbjobs"."job_history_jobs"`);
    expect(counted[0]?.n).toBe(31);
  });

  it("groups by queue, state, fingerprint and minute, in the same partitions, with counted ids as ranges", async () => {
    const { rows } = await client.query(`
      SELECT tableoid::regclass::text AS "partition", "state", "fingerprint", cardinality("job_ids")::int AS "jobs", "id_range"::text AS "ids", "other_ids" AS "others"
        FROM "dbjobs"."job_history" ORDER BY "finished_at", "state"`);
    // Minute 10:00 holds jobs 1-8, 10:01 jobs 9-17, 10:02 jobs 18-25, 10:03 jobs 26-30.
    expect(rows.slice(0, 3)).toEqual([
      { partition: "dbjobs.job_history_2026_12_07", state: "failed", fingerprint: "000000000001", jobs: 1, ids: "[3,4)", others: null },
      { partition: "dbjobs.job_history_2026_12_07", state: "failed", fingerprint: "000000000000", jobs: 1, ids: "[6,7)", others: null },
      { partition: "dbjobs.job_history_2026_12_07", state: "completed", fingerprint: null, jobs: 6, ids: "[1,9)", others: ["given-5"] },
    ]);
    expect(rows.at(-1)).toEqual({ partition: "dbjobs.job_history_default", state: "completed", fingerprint: null, jobs: 1, ids: null, others: ["late"] });
  });

  it("is searched like history the writer wrote", async () => {
    const search = async (input: Parameters<typeof parseHistoryQuery>[0]) =>
      (await searchHistory(client, parseHistoryQuery(input))).entries.map((entry) => entry.jobId);
    expect(await search({ fingerprint: "000000000001" })).toEqual(["27", "21", "given-15", "9", "3"]);
    expect(await search({ id: "given-25" })).toEqual(["given-25"]);
    expect(await search({ id: "29" })).toEqual(["29"]);
    expect(await search({ fields: ["n:=12"] })).toEqual(["12"]);
    expect(await search({ queue: "archiving", state: "failed", limit: 3 })).toEqual(["given-30", "27", "24"]);
  });
});
