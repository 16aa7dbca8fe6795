import type pg from "pg";
import { describe, expect, it } from "vitest";
import { HistoryWriter } from "../src/history/history-writer.js";
import { completedHistoryRow } from "./support/history-rows.js";
import { memoryLogger, useTestDb } from "./support/test-env.js";

/** While PostgreSQL refuses the history rows they are kept, up to a bound, and written once it accepts them again. */

describe("the history writer while the database refuses its rows", () => {
  const testDatabase = useTestDb();

  it("keeps the newest rows up to maxBufferedRows, logs what it dropped, and writes the rest once the table is back", async () => {
    const pool = testDatabase.db.pool;
    const memory = memoryLogger("warn");
    // A timer that never fires during the test: only explicit flushes write.
    const writer = new HistoryWriter({ pool, logger: memory.logger, flushMs: 600_000, batchSize: 100, maxBufferedRows: 5 });
    await pool.query(`ALTER TABLE "dbjobs"."job_history" RENAME TO "job_history_away"`);
    try {
      for (let index = 1; index <= 8; index++) writer.add(completedHistoryRow(`job-${index}`, { moved: 0 }));
      await writer.flush();
      expect(writer.pending).toBe(5);
      expect(memory.lines().some((line) => String(line.msg).startsWith("could not write job history; will retry"))).toBe(true);
    } finally {
      await pool.query(`ALTER TABLE "dbjobs"."job_history_away" RENAME TO "job_history"`);
    }
    await writer.close();
    const { rows } = await pool.query<{ job_id: string }>(`SELECT "job_id" FROM "dbjobs"."job_history_jobs" ORDER BY "job_id"`);
    expect(rows.map((written) => written.job_id)).toEqual(["job-4", "job-5", "job-6", "job-7", "job-8"]);
    expect(memory.lines().find((line) => line.msg === "job history rows dropped while the database refused them")?.dropped).toBe(3);
  });

  it("writes a batch once when the answer to its committed INSERT was lost and the flush is retried", async () => {
    const pool = testDatabase.db.pool;
    const memory = memoryLogger("warn");
    let inserts = 0;
    // The first INSERT commits, and its caller hears of an error instead (a connection lost after COMMIT).
    const losingAnswers: Pick<pg.Pool, "query"> = {
      query: (async (text: string, values?: unknown[]) => {
        const result = await pool.query(text, values);
        if (text.includes("INSERT INTO") && ++inserts === 1) throw new Error("Connection terminated unexpectedly");
        return result;
      }) as pg.Pool["query"],
    };
    const writer = new HistoryWriter({ pool: losingAnswers, logger: memory.logger, flushMs: 600_000 });
    for (let index = 1; index <= 3; index++) writer.add(completedHistoryRow(`lost-${index}`));
    await writer.flush();
    expect(writer.pending).toBe(3);
    // A row that finished meanwhile goes into a batch of its own: the retried one keeps its id and its three rows.
    writer.add(completedHistoryRow("lost-4"));
    await writer.close();
    // The lost one, its retry (skipped by the table), and lost-4's batch.
    expect(inserts).toBe(3);
    const { rows } = await pool.query<{ job_id: string }>(`SELECT "job_id" FROM "dbjobs"."job_history_jobs" WHERE "job_id" LIKE 'lost-%' ORDER BY "job_id"`);
    expect(rows.map((row) => row.job_id)).toEqual(["lost-1", "lost-2", "lost-3", "lost-4"]);
  });
});
