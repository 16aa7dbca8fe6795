import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { backoffDelayMs, errorCodes } from "./retry.js";

/**
 * The one PostgreSQL session db-maintenance works in. REINDEX/DROP INDEX
 * CONCURRENTLY refuse to run inside a transaction block, so this is a plain
 * pool client in autocommit mode, never a Prisma transaction. It carries the
 * short lock_timeout that keeps maintenance from queueing in front of
 * application traffic, and the advisory lock that lets one run at a time.
 */
export interface MaintenanceSession {
  client: pg.PoolClient;
  /** Backend pid, to find this session's builds in pg_stat_progress_create_index. */
  pid: number;
  /** Takes the run lock; false when another run holds it. */
  tryLock(): Promise<boolean>;
  /** Unlocks and returns the connection; a broken connection is discarded, which also frees the lock. */
  release(): Promise<void>;
}

// One run at a time, across every worker process on this database.
const runLockKey = "dbjobs:db-maintenance";

export async function openMaintenanceSession(pool: pg.Pool, lockTimeoutMs: number): Promise<MaintenanceSession> {
  const client = await pool.connect();
  let locked = false;
  let broken = false;
  const onError = () => {
    broken = true;
  };
  client.on("error", onError);
  try {
    // A server-wide statement_timeout must not cut a long index build short;
    // lock_timeout bounds how long anything waits behind application locks.
    await client.query(`SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', '0', false)`, [`${lockTimeoutMs}ms`]);
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    return {
      client,
      pid: rows[0]?.pid ?? 0,
      async tryLock() {
        const result = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock(hashtext($1)) AS locked", [runLockKey]);
        locked = result.rows[0]?.locked === true;
        return locked;
      },
      async release() {
        try {
          if (locked && !broken) await client.query("SELECT pg_advisory_unlock(hashtext($1))", [runLockKey]);
          if (!broken) await client.query("RESET lock_timeout; RESET statement_timeout");
        } catch {
          broken = true;
        }
        // Destroying a broken client ends its session, which frees any advisory lock it held.
        client.off("error", onError);
        client.release(broken);
      },
    };
  } catch (err) {
    client.off("error", onError);
    client.release(true);
    throw err;
  }
}

/** SQLSTATEs that mean "someone else held a lock we needed": retry later, never fail the run. */
const lockSqlStates = new Set(["55P03", "40P01"]);

export function isLockTimeout(err: unknown): boolean {
  return errorCodes(err).some((code) => lockSqlStates.has(code));
}

/** A broken connection (class 08, 57P01 admin shutdown, no SQLSTATE at all) ends the run; anything else is about one object. */
export function isConnectionFailure(err: unknown): boolean {
  const codes = errorCodes(err);
  if (codes.length === 0) return true;
  return codes.some((code) => code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03");
}

export interface LockRetryOptions {
  /** Total attempts, the first included. @defaultValue 4 */
  attempts?: number;
  /** @defaultValue 500 */
  baseDelayMs?: number;
  /** @defaultValue 8000 */
  maxDelayMs?: number;
  /** Called after a lock timeout, before waiting; e.g. to clean up what the failed attempt left. */
  onLockTimeout?: (attempt: number, err: unknown) => Promise<void>;
}

export type LockRetryOutcome<T> = { ok: true; value: T; attempts: number } | { ok: false; attempts: number; error: unknown };

/**
 * Runs `operation`, retrying with exponential backoff and jitter when it hits
 * lock_timeout (55P03) or a deadlock (40P01). After the last attempt the lock
 * error is returned, not thrown: the caller reports the object as skipped.
 * Any other error is thrown.
 */
export async function withLockRetry<T>(operation: () => Promise<T>, options: LockRetryOptions = {}): Promise<LockRetryOutcome<T>> {
  const attempts = options.attempts ?? 4;
  for (let attempt = 1; ; attempt++) {
    try {
      return { ok: true, value: await operation(), attempts: attempt };
    } catch (err) {
      if (!isLockTimeout(err)) throw err;
      await options.onLockTimeout?.(attempt, err);
      if (attempt >= attempts) return { ok: false, attempts: attempt, error: err };
      await sleep(backoffDelayMs(attempt, { baseDelayMs: options.baseDelayMs ?? 500, maxDelayMs: options.maxDelayMs ?? 8000 }));
    }
  }
}
