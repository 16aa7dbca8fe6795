import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { directJobContext, runHandler } from "./support/direct-job-context.js";
import { historyRow, writeHistory } from "./support/history-rows.js";
import { testConfig, useTestDb } from "./support/test-env.js";

/**
 * The history tables keep within HISTORY_RETENTION_DAYS: with the job
 * context's clock moved forward, partition-maintenance makes the days ahead,
 * moves rows out of the default partition, drops whole days past the
 * retention, and touches no other table.
 */
const day = (offset: number) => new Date(Date.UTC(2030, 0, 10 + offset));
const dayName = (table: string, offset: number) => `${table}_${day(offset).toISOString().slice(0, 10).replaceAll("-", "_")}`;

describe("partition-maintenance keeps the job history and the audit log within their retention", () => {
  const testDatabase = useTestDb();
  let client: pg.Client;
  beforeAll(async () => {
    client = new pg.Client({ connectionString: testDatabase.url });
    await client.connect();
  });
  afterAll(async () => {
    await client.end();
  });

  const partitions = async (parent: string) =>
    (
      await client.query<{ name: string }>(
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY 1",
        [parent],
      )
    ).rows.map((row) => row.name);
  const run = (table: "dbjobs.job_history" | "dbjobs.audit_log" | "transactions", now: Date) => {
    const config = testConfig(testDatabase.url, { HISTORY_RETENTION_DAYS: "30" });
    return runHandler("partition-maintenance", { table, daysAhead: 3 }, directJobContext(testDatabase.db, config, { services: { now: () => now } }).context);
  };
  const historyAt = (jobId: string, at: Date) => writeHistory(client, [historyRow({ jobId, finishedAt: at.getTime() })]);

  it("premakes the days ahead, rescues the default's rows, and drops whole days past the retention", async () => {
    await run("transactions", day(0));
    const transactionsBefore = await partitions("transactions");
    const auditBefore = await partitions("dbjobs.audit_log");

    // A row written before any partition existed sits in the default.
    await historyAt("early", new Date(day(0).getTime() + 3_600_000));
    const first = await run("dbjobs.job_history", day(0));
    expect(first.created).toEqual([0, 1, 2, 3].map((offset) => dayName("job_history", offset)));
    expect(first.movedFromDefault).toBe(1);
    expect(first.dropped).toEqual([]);
    expect(first.defaultRows).toBe(0);
    for (const offset of [1, 2, 3]) await historyAt(`day-${offset}`, new Date(day(offset).getTime() + 60_000));

    // 31 days later: day 0 is wholly older than 30 days and goes; day 1 ends exactly at the cutoff and goes too;
    // day 2 is kept until it is entirely past the retention.
    const later = await run("dbjobs.job_history", day(32));
    expect(later.dropped).toEqual([dayName("job_history", 0), dayName("job_history", 1)]);
    expect(later.created).toEqual([32, 33, 34, 35].map((offset) => dayName("job_history", offset)));
    expect(await partitions("dbjobs.job_history")).toEqual(
      [...[2, 3, 32, 33, 34, 35].map((offset) => dayName("job_history", offset)), "job_history_default"].sort(),
    );
    const { rows } = await client.query<{ job_id: string }>(`SELECT "job_id" FROM "dbjobs"."job_history_jobs" ORDER BY "finished_at"`);
    expect(rows.map((row) => row.job_id)).toEqual(["day-2", "day-3"]);

    // Nothing else was touched.
    expect(await partitions("transactions")).toEqual(transactionsBefore);
    expect(await partitions("dbjobs.audit_log")).toEqual(auditBefore);
  });

  it("moves audit rows out of the default through the append-only trigger, and drops expired audit days whole", async () => {
    // Takes nothing. Two audit rows of 2030-01-10 and one of 2030-02-20, all in the default partition.
    await client.query(`
      INSERT INTO "dbjobs"."audit_log" ("at", "actor", "source", "action", "target", "outcome") VALUES
        ('2030-01-10T08:00:00Z', 'alice', 'cli', 'pause', 'archiving', 'ok'),
        ('2030-01-10T09:00:00Z', 'alice', 'cli', 'resume', 'archiving', 'ok'),
        ('2030-02-20T09:00:00Z', 'bob', 'cli', 'retry', 'archiving', 'ok')`);
    const first = await run("dbjobs.audit_log", day(0));
    expect(first.movedFromDefault).toBe(3);
    expect(first.created).toEqual(expect.arrayContaining([dayName("audit_log", 0), "audit_log_2030_02_20"]));
    // Once moved, a row is as protected as before.
    await expect(client.query(`DELETE FROM "dbjobs"."audit_log" WHERE "actor" = 'alice'`)).rejects.toThrow(/append-only/);

    const later = await run("dbjobs.audit_log", new Date(Date.UTC(2030, 2, 1)));
    expect(later.dropped).toEqual(expect.arrayContaining([dayName("audit_log", 0)]));
    expect(later.dropped).not.toContain("audit_log_2030_02_20");
    const { rows } = await client.query<{ actor: string }>(`SELECT "actor" FROM "dbjobs"."audit_log"`);
    expect(rows.map((row) => row.actor)).toEqual(["bob"]);
  });
});
