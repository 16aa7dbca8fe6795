import type pg from "pg";
import type { Db } from "./db.js";
import { SessionLostError } from "./errors.js";

/**
 * A connection of one's own, for work that needs a session: advisory locks,
 * session settings, COPY, REINDEX CONCURRENTLY, DDL in a transaction of its
 * own. The one place dbjobs checks a client out of a pool and holds it.
 *
 * - Given a Db, the session comes from its direct pool (DIRECT_DATABASE_URL),
 *   never through a transaction-pooling PgBouncer, which would hand the
 *   session's later statements, and its lock, to other clients' server
 *   connections. Given a pool, that pool is taken to reach PostgreSQL itself.
 * - While held, an error on the connection (a killed backend, a failover)
 *   is caught here, never an unhandled 'error' event that ends the process;
 *   `lost` is aborted with a SessionLostError, and the next query fails.
 * - A connection whose work threw, or that was lost, is destroyed rather
 *   than returned to the pool, which also ends any advisory lock it held.
 * - `settings` are applied for the session (`set_config(..., false)`) and
 *   reset before a healthy connection goes back to the pool.
 */
export interface Session {
  client: pg.PoolClient;
  /** Aborted, with a SessionLostError as its reason, when the connection fails while held. */
  lost: AbortSignal;
  /** Throws the SessionLostError if the connection was lost; for long loops that work on other connections meanwhile. */
  throwIfLost(): void;
}

export interface SessionOptions {
  /** Session settings, e.g. `{ lock_timeout: "2000ms" }`; names come from code, never from input. */
  settings?: Record<string, string>;
}

export async function withSession<T>(
  from: pg.Pool | Pick<Db, "pool" | "directPool">,
  work: (session: Session) => Promise<T>,
  options: SessionOptions = {},
): Promise<T> {
  // Db's sessionPool, inlined: importing db.ts would load Prisma into every process that takes a session.
  const pool = "connect" in from ? from : (from.directPool ?? from.pool);
  const client = await pool.connect();
  const lost = new AbortController();
  const onError = (err: Error) => {
    if (!lost.signal.aborted) lost.abort(new SessionLostError(err));
  };
  client.on("error", onError);
  const settings = Object.entries(options.settings ?? {});
  let failed = false;
  try {
    if (settings.length > 0) await applySettings(client, settings);
    return await work({
      client,
      lost: lost.signal,
      throwIfLost: () => {
        if (lost.signal.aborted) throw lost.signal.reason;
      },
    });
  } catch (err) {
    failed = true;
    // A query that failed because the connection went away reports it as a lost session.
    if (lost.signal.aborted && !(err instanceof SessionLostError)) throw lost.signal.reason;
    throw err;
  } finally {
    if (!failed && !lost.signal.aborted && settings.length > 0) {
      await client.query(`RESET ${settings.map(([name]) => name).join("; RESET ")}`).catch(() => {
        failed = true;
      });
    }
    const destroy = failed || lost.signal.aborted;
    // A destroyed connection keeps the listener (its closing socket may still emit); a pooled one
    // must not collect one per session (the pool listens while it is idle).
    if (!destroy) client.off("error", onError);
    client.release(destroy);
  }
}

async function applySettings(client: pg.PoolClient, settings: [string, string][]): Promise<void> {
  const calls = settings.map((_, index) => `set_config($${index * 2 + 1}, $${index * 2 + 2}, false)`).join(", ");
  await client.query(`SELECT ${calls}`, settings.flat());
}
