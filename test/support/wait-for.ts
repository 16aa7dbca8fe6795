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

/** True once a backend of the current database waits on a lock held by backend `pid`: a statement is blocked in flight. */
export async function someoneWaitsOn(pid: number, query: (sql: string, values: unknown[]) => Promise<{ rows: { waiting: number }[] }>): Promise<boolean> {
  const { rows } = await query(
    `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND $1::int = ANY(pg_blocking_pids(pid))`,
    [pid],
  );
  return (rows[0]?.waiting ?? 0) > 0;
}
