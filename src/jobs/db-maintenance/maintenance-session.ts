import type pg from "pg";
import type { Db } from "../../lib/db.js";
import { type Session, withSession } from "../../lib/session.js";

/**
 * The one PostgreSQL session db-maintenance works in. REINDEX/DROP INDEX
 * CONCURRENTLY refuse to run inside a transaction block, so this is a plain
 * connection in autocommit mode, never a Prisma transaction. It carries the
 * short lock_timeout that keeps maintenance from queueing in front of
 * application traffic, and the advisory lock that lets one run at a time.
 */
export interface MaintenanceSession extends Session {
  /** Backend pid, to find this session's builds in pg_stat_progress_create_index. */
  pid: number;
}

/** `from`: a Db (the session comes from its direct pool, see withSession) or a pool that reaches PostgreSQL itself. */
export function withMaintenanceSession<T>(
  from: pg.Pool | Pick<Db, "pool" | "directPool">,
  lockTimeoutMs: number,
  work: (session: MaintenanceSession) => Promise<T>,
): Promise<T> {
  return withSession(
    from,
    async (session) => {
      const { rows } = await session.client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      return work({ ...session, pid: rows[0]?.pid ?? 0 });
    },
    // A server-wide statement_timeout must not cut a long index build short;
    // lock_timeout bounds how long anything waits behind application locks.
    { settings: { lock_timeout: `${lockTimeoutMs}ms`, statement_timeout: "0" } },
  );
}
