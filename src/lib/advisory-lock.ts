import type pg from "pg";

/**
 * Session-level advisory locks, held on one dedicated connection for the
 * whole run of a job, so two runs of the same maintenance job (a cron fire
 * and a manual enqueue, or two worker processes) never work side by side.
 * The lock dies with the connection, so a killed worker never leaves it held.
 */

// Takes $1 the lock name. Returns whether the lock was free and is now held.
// hashtextextended gives the 64-bit key from a readable name.
const tryLockSql = "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS acquired";
// Takes $1 the lock name. Returns whether this session held it.
const unlockSql = "SELECT pg_advisory_unlock(hashtextextended($1, 0)) AS released";

export type AdvisoryLockOutcome<T> = { acquired: true; value: T } | { acquired: false };

/**
 * Runs `work` while holding the advisory lock `name` on `client`; when another
 * session holds it, returns `{ acquired: false }` at once instead of waiting.
 */
export async function withTryAdvisoryLock<T>(client: pg.ClientBase, name: string, work: () => Promise<T>): Promise<AdvisoryLockOutcome<T>> {
  const { rows } = await client.query<{ acquired: boolean }>(tryLockSql, [name]);
  if (!rows[0]?.acquired) return { acquired: false };
  try {
    return { acquired: true, value: await work() };
  } finally {
    // A failed unlock (lost connection) is harmless: the lock ends with the session.
    await client.query(unlockSql, [name]).catch(() => undefined);
  }
}

/** Lock names, one per job and table, so different tables never block each other. */
export const advisoryLockNames = {
  partitionMaintenance: (table: string) => `dbjobs:partition-maintenance:${table}`,
  archiving: (table: string) => `dbjobs:archiving:${table}`,
} as const;
