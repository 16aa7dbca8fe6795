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

/** The WHERE conditions of a query and their bind values, before paging. */
interface Filter {
  where: string[];
  values: unknown[];
}

type Row = HistoryEntry & { finishedAtText: string };

const dayMs = 86_400_000;

/**
 * Searches dbjobs.job_history, newest first, one page at a time (keyset
 * paging on finished_at, queue, job id: a later page costs what the first
 * does). Every value is a bind parameter; a payload field becomes jsonb
 * containment, which the GIN index answers.
 *
 * A payload or error-text search walks the history a day (one partition) at
 * a time, newest first, and stops once the page is full: a campaign's
 * thousand rows spread over a month then cost the page's worth of heap reads
 * in the newest day or two, not a thousand reads and a sort. Not for failed
 * or cancelled jobs only: those have an index of their own.
 */
export async function searchHistory(db: Queryable, query: HistoryQuery): Promise<HistoryPage> {
  const filter = filterOf(query);
  // Failed and cancelled rows are few, and a payload index of their own (job_history_payload_unfinished)
  // finds them in one query; a day-by-day walk would cost a query per day and find nothing in most.
  const fewRows = query.state !== undefined && query.state !== "completed";
  const walk = (query.fields.length > 0 || query.errorText !== undefined) && !fewRows;
  const rows = walk ? await walkNewestFirst(db, query, filter) : await selectRows(db, filter, query.limit + 1);
  const page = rows.slice(0, query.limit);
  const last = page[page.length - 1];
  const entries = page.map(({ finishedAtText: _text, ...entry }) => entry);
  if (rows.length <= query.limit || !last) return { entries };
  return { entries, nextCursor: encodeCursor({ finishedAt: last.finishedAtText, queue: last.queue, jobId: last.jobId }) };
}

function filterOf(query: HistoryQuery): Filter {
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
  return { where, values };
}

/** Up to `limit` rows matching `filter` (and finished within `window` when given), newest first. */
async function selectRows(db: Queryable, filter: Filter, limit: number, window?: { from: Date; to: Date }): Promise<Row[]> {
  const values = [...filter.values];
  const where = [...filter.where];
  const bind = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  if (window) where.push(`"finished_at" >= ${bind(window.from)}`, `"finished_at" < ${bind(window.to)}`);
  // Takes the bound filter values and the row limit. Returns the rows newest first, each with its
  // finish time as text (microseconds kept) for the cursor.
  const sql = `
SELECT "queue", "job_id" AS "jobId", "name", "state", "attempts", "enqueued_at" AS "enqueuedAt", "started_at" AS "startedAt",
       "finished_at" AS "finishedAt", to_char("finished_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "finishedAtText", "payload", "result", "error_class" AS "errorClass",
       "error_message" AS "errorMessage", "error_fingerprint" AS "errorFingerprint"
  FROM "dbjobs"."job_history"
 ${where.length ? `WHERE ${where.join("\n   AND ")}` : ""}
 ORDER BY "finished_at" DESC, "queue" DESC, "job_id" DESC
 LIMIT ${bind(limit)}`;
  return (await db.query<Row>(sql, values)).rows;
}

/** The search in UTC-day windows from the newest row (or the page's upper bound) down to the oldest, until the page is full. */
async function walkNewestFirst(db: Queryable, query: HistoryQuery, filter: Filter): Promise<Row[]> {
  // Takes nothing. Returns the oldest and newest finish times (an index end each, per partition).
  const { rows } = await db.query<{ oldest: Date | null; newest: Date | null }>(
    `SELECT min("finished_at") AS "oldest", max("finished_at") AS "newest" FROM "dbjobs"."job_history"`,
  );
  const span = rows[0];
  if (!span?.oldest || !span.newest) return [];
  // Dates here are milliseconds; finish times keep microseconds, so the upper bounds round up by 1 ms and the filter stays exact.
  const uppers = [span.newest.getTime() + 1, query.until?.getTime(), query.cursor ? new Date(query.cursor.finishedAt).getTime() + 1 : undefined];
  let to = Math.min(...uppers.filter((time): time is number => time !== undefined));
  const lowest = Math.max(span.oldest.getTime(), query.since?.getTime() ?? Number.NEGATIVE_INFINITY);
  const found: Row[] = [];
  while (found.length < query.limit + 1 && to > lowest) {
    const from = Math.max(Math.floor((to - 1) / dayMs) * dayMs, lowest);
    found.push(...(await selectRows(db, filter, query.limit + 1 - found.length, { from: new Date(from), to: new Date(to) })));
    to = from;
  }
  return found;
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (character) => `\\${character}`);
}
