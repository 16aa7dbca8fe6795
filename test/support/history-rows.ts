import type { HistoryRow } from "../../src/history/history-row.js";

/** A completed archiving job's history row, finished now, for the writer's tests. */
export function completedHistoryRow(jobId: string, result: unknown = null): HistoryRow {
  return {
    queue: "archiving",
    jobId,
    name: "archiving",
    state: "completed",
    attempts: 1,
    enqueuedAt: Date.now() - 20,
    startedAt: Date.now() - 10,
    finishedAt: Date.now(),
    payload: { dryRun: true },
    redact: [],
    result,
    errorClass: null,
    errorMessage: null,
    errorFingerprint: null,
  };
}
