import type pg from "pg";
import type { Logger } from "../lib/logger.js";
import { type HistoryRow, redactPayload, resultSummaryJson } from "./history-row.js";

/**
 * Batches finished jobs into dbjobs.job_history, off the jobs' hot path: the
 * worker's listeners only push a row into memory. A flush writes every
 * waiting row in one INSERT of unnested arrays, when `batchSize` rows wait or
 * `flushMs` after the last flush, and at close (graceful shutdown).
 *
 * What a crash can lose: the rows not yet flushed, i.e. the jobs finished
 * since the last flush committed: at most `flushMs` of finished jobs, and at
 * most `batchSize` rows once a flush keeps up (plus, while the database is
 * unreachable, everything buffered, up to `maxBufferedRows`). The jobs
 * themselves are not affected: only their history rows are missing.
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

// Takes 13 parallel arrays, one element per finished job. Inserts one history row per element; a row already
// recorded (same job, queue and finish time) is skipped.
const insertSql = `
INSERT INTO "dbjobs"."job_history"
  ("queue", "job_id", "name", "state", "attempts", "enqueued_at", "started_at", "finished_at", "payload", "result",
   "error_class", "error_message", "error_fingerprint")
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::timestamptz[],
                     $8::timestamptz[], $9::jsonb[], $10::jsonb[], $11::text[], $12::text[], $13::text[])
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
  }

  async #writeWaiting(): Promise<void> {
    while (this.#rows.length > 0) {
      const batch = this.#rows.slice(0, this.#batchSize);
      try {
        await this.#pool.query(insertSql, columnsOf(batch));
      } catch (err) {
        this.#logger.warn({ err, rows: this.#rows.length }, "could not write job history; will retry (run `dbjobs migrate` if dbjobs.job_history is missing)");
        return;
      }
      this.#rows.splice(0, batch.length);
      if (this.#dropped > 0) {
        this.#logger.warn({ dropped: this.#dropped }, "job history rows dropped while the database refused them");
        this.#dropped = 0;
      }
    }
  }
}

function columnsOf(rows: HistoryRow[]): unknown[] {
  const toDate = (millis: number | null) => (millis === null ? null : new Date(millis));
  return [
    rows.map((row) => row.queue),
    rows.map((row) => row.jobId),
    rows.map((row) => row.name),
    rows.map((row) => row.state),
    rows.map((row) => row.attempts),
    rows.map((row) => toDate(row.enqueuedAt)),
    rows.map((row) => toDate(row.startedAt)),
    rows.map((row) => new Date(row.finishedAt)),
    rows.map((row) => JSON.stringify(redactPayload(row.payload, row.redact))),
    rows.map((row) => resultSummaryJson(row.result)),
    rows.map((row) => row.errorClass),
    rows.map((row) => row.errorMessage),
    rows.map((row) => row.errorFingerprint),
  ];
}
