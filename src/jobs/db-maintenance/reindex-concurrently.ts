import type pg from "pg";
import type { MaintenanceSession } from "./maintenance-session.js";

/**
 * REINDEX INDEX CONCURRENTLY and DROP INDEX CONCURRENTLY, one index at a time,
 * in the maintenance session (autocommit, short lock_timeout). Names passed in
 * are the catalog's own `format('%I.%I')` output, never user input.
 *
 * While a build runs, a second connection polls pg_stat_progress_create_index
 * for this session's pid, so a long build shows its phase and block/tuple
 * counts instead of sitting silent.
 */
export interface BuildProgress {
  phase: string;
  blocksDone: number;
  blocksTotal: number;
  tuplesDone: number;
  tuplesTotal: number;
  lockersDone: number;
  lockersTotal: number;
  elapsedMs: number;
}

// Takes $1 a backend pid. Returns that backend's CREATE INDEX / REINDEX progress row, if any.
const buildProgressSql = `
SELECT phase,
       blocks_done::float8 AS "blocksDone", blocks_total::float8 AS "blocksTotal",
       tuples_done::float8 AS "tuplesDone", tuples_total::float8 AS "tuplesTotal",
       lockers_done::float8 AS "lockersDone", lockers_total::float8 AS "lockersTotal"
  FROM pg_stat_progress_create_index
 WHERE pid = $1`;

const firstSampleMs = 200;

export interface ReindexOptions {
  /** Connection(s) other than the session, for progress polling. */
  monitor: pg.Pool;
  /** @defaultValue 1000 */
  pollIntervalMs?: number;
  /** Called with each progress sample; must not throw. */
  onProgress?: (progress: BuildProgress) => void;
}

export async function reindexConcurrently(session: MaintenanceSession, qualifiedIndex: string, options: ReindexOptions): Promise<void> {
  const started = Date.now();
  const intervalMs = options.pollIntervalMs ?? 1000;
  let polling: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const sample = async () => {
    try {
      const { rows } = await options.monitor.query<Omit<BuildProgress, "elapsedMs">>(buildProgressSql, [session.pid]);
      const row = rows[0];
      if (row) options.onProgress?.({ ...row, elapsedMs: Date.now() - started });
    } catch {
      // a missed progress sample changes nothing
    }
  };
  const schedule = (delayMs: number) => {
    timer = setTimeout(() => {
      polling = sample().finally(() => {
        polling = undefined;
        if (timer) schedule(intervalMs);
      });
    }, delayMs);
  };
  // The first sample comes early, so a build that waits (for old snapshots or a lock) and
  // then times out still shows what it waited for, even when its lock_timeout equals the interval.
  schedule(Math.min(firstSampleMs, intervalMs));
  try {
    await session.client.query(`REINDEX INDEX CONCURRENTLY ${qualifiedIndex}`);
  } finally {
    clearTimeout(timer);
    timer = undefined;
    await polling;
  }
}

export async function dropIndexConcurrently(session: MaintenanceSession, qualifiedIndex: string): Promise<void> {
  await session.client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${qualifiedIndex}`);
}
