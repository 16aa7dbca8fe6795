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
    const { rows } = await pool.query<{ job_id: string }>(`SELECT "job_id" FROM "dbjobs"."job_history" ORDER BY "job_id"`);
    expect(rows.map((written) => written.job_id)).toEqual(["job-4", "job-5", "job-6", "job-7", "job-8"]);
    expect(memory.lines().find((line) => line.msg === "job history rows dropped while the database refused them")?.dropped).toBe(3);

    // The same batch again (a flush whose COMMIT answer was lost) adds nothing.
    const again = new HistoryWriter({ pool, logger: memory.logger, flushMs: 600_000 });
    const { rows: before } = await pool.query(`SELECT "job_id", "finished_at" FROM "dbjobs"."job_history" WHERE "job_id" = 'job-8'`);
    again.add({ ...completedHistoryRow("job-8", { moved: 0 }), finishedAt: (before[0].finished_at as Date).getTime() });
    await again.close();
    const { rows: counted } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "dbjobs"."job_history"`);
    expect(counted[0]?.n).toBe(5);
  });
});
