import type pg from "pg";
import { encodeCursor, type HistoryQuery } from "./history-query.js";

/** One row of the job history, as search results show it. */
export interface HistoryEntry {
  queue: string;
  jobId: string;
  name: string;
  state: string;
  attempts: number;
  enqueuedAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date;
  payload: unknown;
  result: unknown;
  errorClass: string | null;
  errorMessage: string | null;
  errorFingerprint: string | null;
}

export interface HistoryPage {
  entries: HistoryEntry[];
  /** Pass as `cursor` for the next (older) page; absent on the last page. */
  nextCursor?: string;
}

/** What search needs of a database handle: a pg pool or client (the worker's `db.pool`, the console's pool). */
export type Queryable = Pick<pg.Pool, "query">;

/**
 * Searches dbjobs.job_history, newest first, one page at a time (keyset
 * paging on finished_at, queue, job id: a later page costs what the first
 * does). Every value is a bind parameter; a payload field becomes jsonb
 * containment, which the GIN index answers.
 */
export async function searchHistory(db: Queryable, query: HistoryQuery): Promise<HistoryPage> {
  const where: string[] = [];
  const values: unknown[] = [];
  const bind = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  for (const field of query.fields) {
    // The value itself, or an array holding it (patientIds=…, invoiceIds=…): both are containment, both use the index.
    const nest = (value: unknown) => field.path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value);
    where.push(`("payload" @> ${bind(JSON.stringify(nest(field.value)))}::jsonb OR "payload" @> ${bind(JSON.stringify(nest([field.value])))}::jsonb)`);
  }
  if (query.queue !== undefined) where.push(`"queue" = ${bind(query.queue)}`);
  if (query.state !== undefined) where.push(`"state" = ${bind(query.state)}`);
  if (query.since) where.push(`"finished_at" >= ${bind(query.since)}`);
  if (query.until) where.push(`"finished_at" < ${bind(query.until)}`);
  if (query.fingerprint !== undefined) where.push(`"error_fingerprint" = ${bind(query.fingerprint)}`);
  if (query.errorText !== undefined) where.push(`"error_message" ILIKE ${bind(`%${escapeLike(query.errorText)}%`)}`);
  if (query.jobId !== undefined) where.push(`"job_id" = ${bind(query.jobId)}`);
  if (query.cursor) {
    const at = bind(query.cursor.finishedAt);
    // The first condition lets the planner bound the index range; the row comparison breaks ties.
    where.push(`"finished_at" <= ${at}::timestamptz`);
    where.push(`("finished_at", "queue", "job_id") < (${at}::timestamptz, ${bind(query.cursor.queue)}, ${bind(query.cursor.jobId)})`);
  }
  // Takes the bound filter values and the page size + 1. Returns the page's rows newest first, each with its
  // finish time as text (microseconds kept) for the cursor.
  const sql = `
SELECT "queue", "job_id" AS "jobId", "name", "state", "attempts", "enqueued_at" AS "enqueuedAt", "started_at" AS "startedAt",
       "finished_at" AS "finishedAt", to_char("finished_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "finishedAtText", "payload", "result", "error_class" AS "errorClass",
       "error_message" AS "errorMessage", "error_fingerprint" AS "errorFingerprint"
  FROM "dbjobs"."job_history"
 ${where.length ? `WHERE ${where.join("\n   AND ")}` : ""}
 ORDER BY "finished_at" DESC, "queue" DESC, "job_id" DESC
 LIMIT ${bind(query.limit + 1)}`;
  const { rows } = await db.query<HistoryEntry & { finishedAtText: string }>(sql, values);
  const page = rows.slice(0, query.limit);
  const last = page[page.length - 1];
  const entries = page.map(({ finishedAtText: _text, ...entry }) => entry);
  if (rows.length <= query.limit || !last) return { entries };
  return { entries, nextCursor: encodeCursor({ finishedAt: last.finishedAtText, queue: last.queue, jobId: last.jobId }) };
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (character) => `\\${character}`);
}
