import type pg from "pg";
import type { HistoryRow } from "../../src/history/history-row.js";
import { HistoryWriter } from "../../src/history/history-writer.js";
import { memoryLogger } from "./test-env.js";

/** A completed archiving job's history row, finished now, for the writer's tests. */
export function completedHistoryRow(jobId: string, result: unknown = null): HistoryRow {
  return historyRow({ jobId, finishedAt: Date.now(), result, enqueuedAt: Date.now() - 20, startedAt: Date.now() - 10, payload: { dryRun: true } });
}

/** A history row with the given fields; the rest those of a completed archiving job without times. */
export function historyRow(fields: Partial<HistoryRow> & Pick<HistoryRow, "jobId" | "finishedAt">): HistoryRow {
  return {
    queue: "archiving",
    name: fields.queue ?? "archiving",
    state: "completed",
    attempts: 1,
    enqueuedAt: null,
    startedAt: null,
    payload: {},
    redact: [],
    result: null,
    errorClass: null,
    errorMessage: null,
    errorFingerprint: null,
    ...fields,
  };
}

/** Writes rows as the workers do, through the history writer: sealed into batches of at most `batchSize` rows and 60 s. */
export async function writeHistory(db: Pick<pg.Pool, "query">, rows: readonly HistoryRow[], batchSize = 500): Promise<void> {
  const memory = memoryLogger("warn");
  const writer = new HistoryWriter({ pool: db, logger: memory.logger, flushMs: 600_000, batchSize, maxBufferedRows: rows.length + 1 });
  for (const row of rows) writer.add(row);
  await writer.close();
  if (writer.pending > 0) throw new Error(`history rows not written: ${JSON.stringify(memory.lines())}`);
}

/** The history one job per row, newest first as the search orders it: `SELECT <columns> FROM dbjobs.job_history_jobs WHERE <where>`. */
export const historyJobsNewestFirst = (where: string) =>
  `SELECT "job_id" FROM "dbjobs"."job_history_jobs" WHERE ${where} ORDER BY "finished_at" DESC, "queue" COLLATE "C" DESC, "job_id" COLLATE "C" DESC`;
