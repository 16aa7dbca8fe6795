import type pg from "pg";
import { ConfigError } from "./errors.js";
import type { Logger } from "./logger.js";
import type { QueueStore } from "./queue-store.js";

/**
 * Whether a pool's connections reach PostgreSQL through a connection pooler
 * (PgBouncer, or another proxy that answers the startup itself). PostgreSQL
 * sends its backend's pid in BackendKeyData, the pid pg_backend_pid() returns;
 * a pooler sends a key of its own, so the two differ. This cannot tell
 * PgBouncer's pool modes apart (SHOW pool_mode exists only on its admin
 * console): a pooler in session mode keeps sessions intact, so it only warns.
 */
export async function reachesThroughPooler(pool: pg.Pool): Promise<boolean> {
  const client = await pool.connect();
  try {
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    const announced = (client as unknown as { processID?: number }).processID;
    return typeof announced === "number" && rows[0]?.pid !== announced;
  } finally {
    client.release();
  }
}

/**
 * Logs a warning when the connections that hold sessions (advisory locks,
 * LISTEN, REINDEX CONCURRENTLY) go through a pooler; a failure to check is
 * left to the process's own database error handling.
 */
export async function warnIfSessionsPooled(pool: pg.Pool, directUrlSet: boolean, logger: Logger): Promise<boolean> {
  const pooled = await reachesThroughPooler(pool).catch(() => false);
  if (!pooled) return false;
  const setting = directUrlSet ? "DIRECT_DATABASE_URL" : "DATABASE_URL (DIRECT_DATABASE_URL is unset)";
  logger.warn(
    { setting },
    `${setting} reaches PostgreSQL through a connection pooler (the backend pid differs from the connection's). ` +
      "Advisory locks, LISTEN, REINDEX CONCURRENTLY and session settings need a session of their own: behind PgBouncer in " +
      "transaction mode they break. Set DIRECT_DATABASE_URL to PostgreSQL itself (or a session-mode pool); see docs/operating.md, PgBouncer.",
  );
  return true;
}

/** PgBouncer's answer to a startup parameter it does not pass on (`options`): SQLSTATE 08P01. */
function isStartupParameterRefusal(err: unknown): err is Error {
  return err instanceof Error && (err as { code?: unknown }).code === "08P01" && /unsupported startup parameter/i.test(err.message);
}

/**
 * Refuses to start a worker whose PostgreSQL queue store is behind PgBouncer.
 * BullMQ's backend sets search_path with the `options` startup parameter,
 * which PgBouncer refuses, and a BullMQ worker would retry that at once,
 * forever (measured: about 100,000 "worker error" lines a second). Any other
 * failure, such as an outage, is left to the worker, which waits it out.
 */
export async function refuseQueueStoreBehindPooler(store: QueueStore, timeoutMs: number): Promise<void> {
  if (store.kind !== "postgres") return;
  try {
    await store.ready(timeoutMs);
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    if (!isStartupParameterRefusal(cause)) return;
    throw new ConfigError(
      `${store.setting} (${store.redactedUrl}) refused the queue backend's connection: "${cause.message}". ` +
        "It goes through PgBouncer (or another pooler), which the PostgreSQL queue backend cannot use: " +
        "set DIRECT_DATABASE_URL (or QUEUE_DATABASE_URL) to PostgreSQL itself.",
      { cause },
    );
  }
}
