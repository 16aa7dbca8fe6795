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

/**
 * Waits until no backend of the current database runs under `applicationName`.
 * After a client process is killed, a statement or COMMIT it had already sent
 * still completes on the server; once its backends are gone, everything the
 * process did is either committed or rolled back, and can be counted.
 */
export async function waitForSessionsToEnd(
  applicationName: string,
  query: (sql: string, values: unknown[]) => Promise<{ rows: { sessions: number }[] }>,
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    `the sessions of ${applicationName} to end`,
    async () => {
      const { rows } = await query(
        "SELECT count(*)::int AS sessions FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()",
        [applicationName],
      );
      return (rows[0]?.sessions ?? 0) === 0;
    },
    timeoutMs,
  );
}
