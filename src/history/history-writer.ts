import type pg from "pg";
import { asyncCommitCondition, flushAsyncCommits } from "../lib/async-commit.js";
import type { Logger } from "../lib/logger.js";
import { type HistoryRow, redactPayload, resultSummaryJson } from "./history-row.js";

/**
 * Batches finished jobs into dbjobs.job_history, off the jobs' hot path: the
 * worker's listeners only push a row into memory. A flush writes every
 * waiting row in one INSERT (one JSON parameter, jsonb_to_recordset), when `batchSize` rows wait or
 * `flushMs` after the last flush, and at close (graceful shutdown).
 *
 * What a crash can lose: the rows not yet written, i.e. those of jobs that
 * finished after the last committed flush began. While flushes keep up that
 * is at most `flushMs` of finished jobs and fewer than `batchSize` rows, plus
 * the rows of the one INSERT in flight when the process dies; while the
 * database is unreachable, everything buffered (at most `maxBufferedRows`).
 * A flush commits without waiting for the WAL flush (asynchronous commit), so
 * a crash of PostgreSQL itself can also lose the flushes of its last 0.6 s
 * (3 × wal_writer_delay); close() makes them durable. The jobs themselves are
 * not affected: only their history rows are missing.
 *
 * Writing a batch twice is harmless (ON CONFLICT DO NOTHING on job, queue and
 * finish time), so a flush whose COMMIT answer was lost is simply retried.
 */
export interface HistoryWriterOptions {
  pool: Pick<pg.Pool, "query">;
  logger: Logger;
  /** @defaultValue 1000 */
  flushMs?: number;
  /** @defaultValue 500 */
  batchSize?: number;
  /** Rows kept while the database refuses them; the oldest are dropped (and counted in a warning) beyond this. @defaultValue 50 × batchSize */
  maxBufferedRows?: number;
}

// Takes $1 a JSON array with one object per finished job (rowJson below; times in epoch milliseconds).
// Inserts one history row per element; a row already recorded (same job, queue and finish time) is skipped.
//
// One JSON parameter rather than 13 unnested arrays: node-postgres encodes an array parameter element by
// element (escaping each string, formatting each Date), about 4 times the CPU of JSON.stringify, and
// that CPU is the worker's (bench/history.ts).
//
// The one-time WHERE condition turns off synchronous commit for the statement: on a machine shared with
// the workers, waiting for a WAL flush per batch cost about 9% of no-op throughput (docs/benchmarks.md, "history").
const insertSql = `
INSERT INTO "dbjobs"."job_history"
  ("queue", "job_id", "name", "state", "attempts", "enqueued_at", "started_at", "finished_at", "payload", "result",
   "error_class", "error_message", "error_fingerprint")
SELECT r.q, r.id, r.n, r.s, r.a, to_timestamp(r.e / 1000.0), to_timestamp(r.st / 1000.0), to_timestamp(r.f / 1000.0), r.p, r.r,
       r.ec, r.em, r.fp
  FROM jsonb_to_recordset($1::jsonb)
       AS r(q text, id text, n text, s text, a int, e float8, st float8, f float8, p jsonb, r jsonb, ec text, em text, fp text)
 WHERE ${asyncCommitCondition}
ON CONFLICT DO NOTHING`;

export class HistoryWriter {
  readonly #pool: Pick<pg.Pool, "query">;
  readonly #logger: Logger;
  readonly #batchSize: number;
  readonly #maxBuffered: number;
  readonly #timer: NodeJS.Timeout;
  #rows: HistoryRow[] = [];
  #flushing: Promise<void> | undefined;
  #dropped = 0;
  #closed = false;
  /** Whether a flush has committed (asynchronously): close() then makes it durable. */
  #written = false;

  constructor(options: HistoryWriterOptions) {
    this.#pool = options.pool;
    this.#logger = options.logger;
    this.#batchSize = options.batchSize ?? 500;
    this.#maxBuffered = options.maxBufferedRows ?? this.#batchSize * 50;
    this.#timer = setInterval(() => void this.flush(), options.flushMs ?? 1000);
    this.#timer.unref();
  }

  /** Rows waiting for the next flush. */
  get pending(): number {
    return this.#rows.length;
  }

  /** Never throws and never waits: called from the worker's listeners. */
  add(row: HistoryRow): void {
    if (this.#closed) return;
    this.#rows.push(row);
    if (this.#rows.length > this.#maxBuffered) {
      this.#rows.shift();
      this.#dropped += 1;
    }
    if (this.#rows.length >= this.#batchSize && !this.#flushing) void this.flush();
  }

  /** Writes what waits; one flush at a time, and a flush in progress is awaited. Failures are logged, and the rows kept for the next one. */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    if (this.#rows.length === 0) return Promise.resolve();
    this.#flushing = this.#writeWaiting().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  /** Stops the timer and writes every row still waiting (graceful shutdown). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    while (this.#flushing || this.#rows.length > 0) {
      const before = this.#rows.length;
      await this.flush();
      // The database refused the rows: they stay unwritten, and the log says how many.
      if (this.#rows.length >= before && !this.#flushing) break;
    }
    if (this.#rows.length > 0) this.#logger.warn({ rows: this.#rows.length }, "job history rows not written at shutdown: the database refused them");
    if (this.#written) {
      await flushAsyncCommits(this.#pool).catch((err: unknown) =>
        this.#logger.warn({ err }, "could not make the last job history rows durable; a PostgreSQL crash now could lose its last 0.6 s of them"),
      );
    }
  }

  async #writeWaiting(): Promise<void> {
    while (this.#rows.length > 0) {
      const batch = this.#rows.slice(0, this.#batchSize);
      try {
        await this.#pool.query(insertSql, [`[${batch.map(rowJson).join(",")}]`]);
      } catch (err) {
        this.#logger.warn({ err, rows: this.#rows.length }, "could not write job history; will retry (run `dbjobs migrate` if dbjobs.job_history is missing)");
        return;
      }
      this.#rows.splice(0, batch.length);
      this.#written = true;
      if (this.#dropped > 0) {
        this.#logger.warn({ dropped: this.#dropped }, "job history rows dropped while the database refused them");
        this.#dropped = 0;
      }
    }
  }
}

/** One row as the JSON object insertSql reads; the payload and result are embedded as JSON, not as strings. */
function rowJson(row: HistoryRow): string {
  const text = JSON.stringify;
  return (
    `{"q":${text(row.queue)},"id":${text(row.jobId)},"n":${text(row.name)},"s":"${row.state}","a":${row.attempts},` +
    `"e":${row.enqueuedAt ?? "null"},"st":${row.startedAt ?? "null"},"f":${row.finishedAt},` +
    `"p":${text(redactPayload(row.payload, row.redact)) ?? "{}"},"r":${resultSummaryJson(row.result) ?? "null"},` +
    `"ec":${text(row.errorClass)},"em":${text(row.errorMessage)},"fp":${text(row.errorFingerprint)}}`
  );
}
