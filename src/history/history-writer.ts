import type pg from "pg";
import { asyncCommitCondition, flushAsyncCommits } from "../lib/async-commit.js";
import type { Logger } from "../lib/logger.js";
import { batchParams, type HistoryBatch, sealBatches } from "./history-batch.js";
import type { HistoryRow } from "./history-row.js";

/**
 * Batches finished jobs into dbjobs.job_history, off the jobs' hot path: the
 * worker's listeners only push a row into memory. A flush seals every
 * waiting row into batches (per queue, state and error fingerprint, at most
 * `batchSize` rows and 60 s of finishes each) and writes each batch as one row of the table, when
 * `batchSize` rows wait or `flushMs` after the last flush, and at close
 * (graceful shutdown).
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
 * Writing a batch twice is harmless: a sealed batch keeps its id and its rows
 * until it is written, and the table skips an id it holds (ON CONFLICT DO
 * NOTHING), so a flush whose COMMIT answer was lost is simply retried.
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

// Takes one batch's parameters (batchParams in history-batch.ts; times in epoch ms). Inserts it as one
// history row; a batch already recorded (same id and last finish) is skipped.
//
// The payloads and jobs go as JSON text, parsed once by PostgreSQL: a parameter per column measured
// cheaper for the server than one JSON document of every batch (jsonb_to_recordset copies each field out).
//
// The one-time WHERE condition turns off synchronous commit for the statement: on a machine shared with
// the workers, waiting for a WAL flush per batch cost about 9% of no-op throughput (docs/benchmarks.md, "history").
const insertSql = `
INSERT INTO "dbjobs"."job_history"
  ("batch_id", "queue", "state", "first_finished_at", "finished_at", "job_ids", "payloads", "jobs", "id_range", "other_ids",
   "fingerprint", "error_text")
SELECT $1::uuid, $2::text, $3::text, to_timestamp($4::float8 / 1000), to_timestamp($5::float8 / 1000), $6::text[], $7::jsonb, $8::jsonb,
       CASE WHEN $9::bigint IS NOT NULL THEN int8range($9::bigint, $10::bigint, '[]') END, $11::text[], $12::text, $13::text
 WHERE ${asyncCommitCondition}
ON CONFLICT DO NOTHING`;

export class HistoryWriter {
  readonly #pool: Pick<pg.Pool, "query">;
  readonly #logger: Logger;
  readonly #batchSize: number;
  readonly #maxBuffered: number;
  readonly #timer: NodeJS.Timeout;
  /** Rows not yet sealed into a batch. */
  #open: HistoryRow[] = [];
  /** Batches sealed and not yet written, oldest first. */
  #sealed: HistoryBatch[] = [];
  #sealedRows = 0;
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

  /** Rows waiting to be written. */
  get pending(): number {
    return this.#open.length + this.#sealedRows;
  }

  /** Never throws and never waits: called from the worker's listeners. */
  add(row: HistoryRow): void {
    if (this.#closed) return;
    this.#open.push(row);
    if (this.pending > this.#maxBuffered) this.#dropOldest();
    if (this.#open.length >= this.#batchSize && !this.#flushing) void this.flush();
  }

  /** Writes what waits; one flush at a time, and a flush in progress is awaited. Failures are logged, and the rows kept for the next one. */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    if (this.pending === 0) return Promise.resolve();
    this.#flushing = this.#writeWaiting().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  /** Stops the timer and writes every row still waiting (graceful shutdown). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    while (this.#flushing || this.pending > 0) {
      const before = this.pending;
      await this.flush();
      // The database refused the rows: they stay unwritten, and the log says how many.
      if (this.pending >= before && !this.#flushing) break;
    }
    if (this.pending > 0) this.#logger.warn({ rows: this.pending }, "job history rows not written at shutdown: the database refused them");
    if (this.#written) {
      await flushAsyncCommits(this.#pool).catch((err: unknown) =>
        this.#logger.warn({ err }, "could not make the last job history rows durable; a PostgreSQL crash now could lose its last 0.6 s of them"),
      );
    }
  }

  /** Over maxBufferedRows (the database refusing rows for long): the oldest row goes, from a sealed batch if there is one. */
  #dropOldest(): void {
    const oldest = this.#sealed[0];
    if (oldest) {
      oldest.rows.shift();
      this.#sealedRows -= 1;
      if (oldest.rows.length === 0) this.#sealed.shift();
    } else {
      this.#open.shift();
    }
    this.#dropped += 1;
  }

  async #writeWaiting(): Promise<void> {
    if (this.#open.length > 0) {
      const sealed = sealBatches(this.#open, this.#batchSize);
      this.#open = [];
      this.#sealed.push(...sealed);
      for (const batch of sealed) this.#sealedRows += batch.rows.length;
    }
    while (this.#sealed.length > 0) {
      const batch = this.#sealed[0] as HistoryBatch;
      try {
        await this.#pool.query(insertSql, batchParams(batch));
      } catch (err) {
        this.#logger.warn({ err, rows: this.pending }, "could not write job history; will retry (run `dbjobs migrate` if dbjobs.job_history is missing)");
        return;
      }
      // Rows dropped from the batch meanwhile were counted out already; what is left of it is written.
      const at = this.#sealed.indexOf(batch);
      if (at >= 0) {
        this.#sealed.splice(at, 1);
        this.#sealedRows -= batch.rows.length;
      }
      this.#written = true;
      if (this.#dropped > 0) {
        this.#logger.warn({ dropped: this.#dropped }, "job history rows dropped while the database refused them");
        this.#dropped = 0;
      }
    }
  }
}
