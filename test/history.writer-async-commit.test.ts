import type pg from "pg";
import { describe, expect, it } from "vitest";
import { HistoryWriter } from "../src/history/history-writer.js";
import { commitRecordingSql } from "./support/commit-settings.js";
import { completedHistoryRow } from "./support/history-rows.js";
import { memoryLogger, useTestDb } from "./support/test-env.js";

/**
 * A flush commits without waiting for the WAL flush, and close() ends with a
 * synchronous commit that makes every earlier one durable. Each statement runs
 * here in a transaction of its own, and the test reads the setting it leaves
 * for its commit.
 */
describe("the history writer's commits", () => {
  const testDatabase = useTestDb();

  it("writes batches with asynchronous commit, and makes them durable at close", async () => {
    const name = (text: string) =>
      text.includes(`INSERT INTO "dbjobs"."job_history"`) ? "write rows" : text.includes("pg_logical_emit_message") ? "flush" : text;
    const { sql: inTransaction, commits } = commitRecordingSql(testDatabase.db.pool, name);
    const writer = new HistoryWriter({ pool: inTransaction, logger: memoryLogger("warn").logger, flushMs: 600_000, batchSize: 3 });
    for (let index = 1; index <= 5; index++) writer.add(completedHistoryRow(`async-${index}`));
    await writer.close();

    expect(commits).toEqual([
      { statement: "write rows", synchronousCommit: "off" },
      { statement: "write rows", synchronousCommit: "off" },
      { statement: "flush", synchronousCommit: "on" },
    ]);
    const { rows } = await testDatabase.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "dbjobs"."job_history_jobs" WHERE "job_id" LIKE 'async-%'`,
    );
    expect(rows[0]?.n).toBe(5);
  });

  it("flushes nothing at close when it wrote nothing", async () => {
    const statements: string[] = [];
    const pool = testDatabase.db.pool;
    const counting: Pick<pg.Pool, "query"> = {
      query: ((text: string, values?: unknown[]) => {
        statements.push(text);
        return pool.query(text, values);
      }) as pg.Pool["query"],
    };
    const writer = new HistoryWriter({ pool: counting, logger: memoryLogger("warn").logger, flushMs: 600_000 });
    await writer.close();
    expect(statements).toEqual([]);
  });
});
