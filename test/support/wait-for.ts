import { setTimeout as sleep } from "node:timers/promises";

/** Polls `check` until it returns something truthy; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false | null>, timeoutMs = 30_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** True once some backend of the current database waits on a lock: a statement is blocked in flight. */
export async function someoneWaitsOnALock(query: (sql: string) => Promise<{ rows: { waiting: number }[] }>): Promise<boolean> {
  const { rows } = await query(`SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
  return (rows[0]?.waiting ?? 0) > 0;
}
