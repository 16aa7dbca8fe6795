import type pg from "pg";
import { periodStart } from "../partitions/period-bounds.js";
import type { StoredJob } from "./history-batch.js";
import { encodeCursor, type HistoryQuery } from "./history-query.js";
import { jobFinishedMs, type SearchConditions, searchConditions } from "./search-conditions.js";

/** One finished job, as search results show it. */
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

type Found = { entry: HistoryEntry; finishedMs: number };

/** A range of batch last-finish times, epoch ms: [from, to). */
interface Window {
  from?: number;
  to?: number;
}

const wholeHistory: Window[] = [{}];
/** Batches read by the first query of a window without an index lookup; each further query reads at least 4 times more, up to the last. */
const FIRST_CHUNK = 2;
const LAST_CHUNK = 1024;

/**
 * Searches the job history, newest first (finish time, then queue and job
 * id), one page at a time by keyset: a later page costs what the first does.
 * Every value is a bind parameter.
 *
 * The history is stored as batch rows (history-batch.ts), so the search reads
 * the batches that may hold a match, newest last-finish first, in growing
 * chunks, and unnests only theirs. A job is placed on the page once no unread
 * batch can hold a newer one: every unread batch finished last at or before
 * the chunk's oldest, and its jobs no later. The order is exact; it only
 * costs reading a chunk beyond the page.
 *
 * A payload or error-text search walks the history a day (one partition) at
 * a time, newest first, and stops once the page is full: a campaign's
 * batches spread over a month then cost the newest day or two, not a GIN
 * bitmap over every day and a sort. Not for failed or cancelled jobs only:
 * those have an index of their own.
 */
export async function searchHistory(db: Queryable, query: HistoryQuery): Promise<HistoryPage> {
  const conditions = searchConditions(query);
  const want = query.limit + 1;
  const fewRows = query.state !== undefined && query.state !== "completed";
  const walk = (query.fields.length > 0 || query.errorText !== undefined) && !fewRows;
  let found: Found[] = [];
  for await (const window of walk ? dayWindows(db, query, conditions) : wholeHistory) {
    found = await searchWindow(db, conditions, window, want, found);
    const last = found[want - 1];
    if (last && window.from !== undefined && last.finishedMs >= window.from) break;
  }
  const page = found.slice(0, query.limit);
  const entries = page.map((row) => row.entry);
  const last = page[page.length - 1];
  if (found.length <= query.limit || !last) return { entries };
  return { entries, nextCursor: encodeCursor({ finishedAt: last.entry.finishedAt.toISOString(), queue: last.entry.queue, jobId: last.entry.jobId }) };
}

/** The window's batches in growing chunks, merged into `found` (the best `want` so far), until the page is settled or the window read. */
async function searchWindow(db: Queryable, conditions: SearchConditions, window: Window, want: number, found: Found[]): Promise<Found[]> {
  let best = found;
  let after: { ms: number; batchId: string } | undefined;
  // Found through an index lookup, a query costs the lookup whatever it reads: read enough at once for the page.
  let chunk = conditions.selective ? 2 * want : FIRST_CHUNK;
  for (;;) {
    const read = await readChunk(db, conditions, window, after, chunk, want);
    best = [...best, ...read.rows].sort(newestFirst).slice(0, want);
    if (read.batches < chunk || !read.last) return best;
    const last = read.last;
    after = last;
    // Every unread batch finished last at or before last.ms, so a job finished after it is placed for good.
    const placed = best.filter((row) => row.finishedMs > last.ms).length;
    if (placed >= want) return best;
    // Enough batches for the jobs still missing at the rate this chunk matched them, and at least four times more.
    const perBatch = read.rows.length / read.batches;
    const needed = perBatch > 0 ? Math.ceil((2 * (want - placed)) / perBatch) : 0;
    chunk = Math.min(LAST_CHUNK, Math.max(chunk * 4, needed));
  }
}

async function readChunk(
  db: Queryable,
  conditions: SearchConditions,
  window: Window,
  after: { ms: number; batchId: string } | undefined,
  chunk: number,
  want: number,
): Promise<{ batches: number; last?: { ms: number; batchId: string }; rows: Found[] }> {
  const values = [...conditions.values];
  const bind = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  const batchWhere = [...conditions.batch];
  if (window.from !== undefined) batchWhere.push(`h."finished_at" >= to_timestamp(${bind(window.from)}::float8 / 1000)`);
  if (window.to !== undefined) batchWhere.push(`h."finished_at" < to_timestamp(${bind(window.to)}::float8 / 1000)`);
  if (after) batchWhere.push(`(h."finished_at", h."batch_id") < (to_timestamp(${bind(after.ms)}::float8 / 1000), ${bind(after.batchId)}::uuid)`);
  // Takes the bound condition values, the chunk's batch count and the rows wanted. Returns how many
  // batches it read, the last of them ([last finish in ms, batch id]), and the best matching jobs among
  // them, newest first ([queue, state, job id, payload, job]).
  const sql = `
WITH "b" AS MATERIALIZED (
  SELECT h."batch_id", h."queue", h."state", h."finished_at", h."job_ids", h."payloads", h."jobs"
    FROM "dbjobs"."job_history" h
   ${batchWhere.length ? `WHERE ${batchWhere.join("\n     AND ")}` : ""}
   ORDER BY h."finished_at" DESC, h."batch_id" DESC
   LIMIT ${bind(chunk)}
), "r" AS (
  SELECT h."queue", h."state", x."job_id", x."payload", x."job"
    FROM "b" h
   CROSS JOIN LATERAL ROWS FROM (unnest(h."job_ids"), jsonb_array_elements(h."payloads"), jsonb_array_elements(h."jobs")) AS x("job_id", "payload", "job")
   ${conditions.job.length ? `WHERE ${conditions.job.join("\n     AND ")}` : ""}
   ORDER BY ${jobFinishedMs} DESC, h."queue" COLLATE "C" DESC, x."job_id" COLLATE "C" DESC
   LIMIT ${bind(want)}
)
SELECT (SELECT count(*)::int FROM "b") AS "batches",
       (SELECT json_build_array(floor(extract(epoch FROM "finished_at") * 1000)::bigint, "batch_id") FROM "b" ORDER BY "finished_at", "batch_id" LIMIT 1) AS "last",
       (SELECT coalesce(json_agg(json_build_array("queue", "state", "job_id", "payload", "job")), '[]') FROM "r") AS "rows"`;
  type Result = { batches: number; last: [number, string] | null; rows: [string, string, string, unknown, StoredJob][] };
  const { rows } = await db.query<Result>(sql, values);
  const result = rows[0] as Result;
  return {
    batches: result.batches,
    last: result.last ? { ms: Number(result.last[0]), batchId: result.last[1] } : undefined,
    rows: result.rows.map(([queue, state, jobId, payload, job]) => ({ entry: entryOf(queue, state, jobId, payload, job), finishedMs: job.f })),
  };
}

function entryOf(queue: string, state: string, jobId: string, payload: unknown, job: StoredJob): HistoryEntry {
  return {
    queue,
    jobId,
    name: job.n,
    state,
    attempts: job.a,
    enqueuedAt: job.e === undefined ? null : new Date(job.e),
    startedAt: job.st === undefined ? null : new Date(job.st),
    finishedAt: new Date(job.f),
    payload,
    result: job.r ?? null,
    errorClass: job.ec ?? null,
    errorMessage: job.em ?? null,
    errorFingerprint: job.fp ?? null,
  };
}

/** Newest first: finish time, then queue and job id in byte order (the SQL's COLLATE "C"). */
function newestFirst(a: Found, b: Found): number {
  if (a.finishedMs !== b.finishedMs) return b.finishedMs - a.finishedMs;
  if (a.entry.queue !== b.entry.queue) return a.entry.queue < b.entry.queue ? 1 : -1;
  if (a.entry.jobId !== b.entry.jobId) return a.entry.jobId < b.entry.jobId ? 1 : -1;
  return 0;
}

/** UTC days of batch last-finish times, newest first, from the newest batch (or the page's upper bound) down to the oldest (or --since). */
async function* dayWindows(db: Queryable, query: HistoryQuery, conditions: SearchConditions): AsyncGenerator<Window> {
  // Takes nothing. Returns the oldest and newest batch finish times (an index end each, per partition).
  const { rows } = await db.query<{ oldest: Date | null; newest: Date | null }>(
    `SELECT min("finished_at") AS "oldest", max("finished_at") AS "newest" FROM "dbjobs"."job_history"`,
  );
  const span = rows[0];
  if (!span?.oldest || !span.newest) return;
  let to = Math.min(span.newest.getTime() + 1, conditions.finishedBefore ?? Number.POSITIVE_INFINITY);
  const lowest = Math.max(span.oldest.getTime(), query.since?.getTime() ?? Number.NEGATIVE_INFINITY);
  while (to > lowest) {
    const from = Math.max(periodStart(new Date(to - 1), "day").getTime(), lowest);
    yield { from, to };
    to = from;
  }
}
