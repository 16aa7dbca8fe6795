import type pg from "pg";

/**
 * One job's view of the process's pg pool. It remembers the PostgreSQL
 * backend (pid) of every connection it hands out, for as long as the
 * connection is held, so that a cancelled job's running statements can be
 * stopped with pg_cancel_backend: the statement fails with SQLSTATE 57014 and
 * its transaction rolls back. Once `signal` is aborted its connections refuse
 * new statements, so a handler between two statements does not start the next.
 *
 * Only statements sent through this pool are tracked; Prisma's queries share
 * the process's pool and are not (a handler checks its signal between them).
 * `recordPids: false` for a pool behind PgBouncer, whose connections carry
 * PgBouncer's pid, not the server's: they still refuse statements once stopped.
 */
export interface BackendTrackingPool {
  pool: pg.Pool;
  /** Backends of the connections held right now. */
  backends(): number[];
}

type QueryArgs = Parameters<pg.PoolClient["query"]>;

export function trackBackends(
  pool: pg.Pool,
  signal: AbortSignal,
  reportQueryTime?: (durationMs: number, query: string) => void,
  options: { recordPids?: boolean } = {},
): BackendTrackingPool {
  const recordPids = options.recordPids ?? true;
  const held = new Map<pg.PoolClient, number>();
  const refuseIfStopped = () => {
    if (signal.aborted) throw signal.reason;
  };

  const guarded = (client: pg.PoolClient): pg.PoolClient =>
    new Proxy(client, {
      get(target, property) {
        if (property === "query") {
          return (...args: QueryArgs) => {
            refuseIfStopped();
            return (target.query as (...a: QueryArgs) => unknown)(...args);
          };
        }
        if (property === "release") {
          return (destroy?: Error | boolean) => {
            held.delete(target);
            return target.release(destroy);
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });

  const connect = async (): Promise<pg.PoolClient> => {
    refuseIfStopped();
    const client = await pool.connect();
    // processID comes with the connection's BackendKeyData; pg keeps it on the client.
    const pid = (client as unknown as { processID?: number }).processID;
    if (recordPids && typeof pid === "number") held.set(client, pid);
    return guarded(client);
  };

  // pool.query as pg's own: a client for one statement, destroyed if the statement failed.
  const query = async (...args: QueryArgs) => {
    const client = await connect();
    const started = performance.now();
    try {
      const result = await (client.query as (...a: QueryArgs) => Promise<unknown>)(...args);
      client.release();
      return result;
    } catch (err) {
      client.release(err as Error);
      throw err;
    } finally {
      if (typeof args[0] === "string") reportQueryTime?.(Math.round(performance.now() - started), args[0]);
    }
  };

  const view = new Proxy(pool, {
    get(target, property) {
      if (property === "connect") return connect;
      if (property === "query") return query;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { pool: view, backends: () => [...held.values()] };
}

// Takes $1 int[] backend pids. Asks each to cancel its running statement; returns how many were signalled.
const cancelBackendsSql = "SELECT count(*) FILTER (WHERE pg_cancel_backend(pid))::int AS cancelled FROM unnest($1::int[]) AS b(pid)";

/** Cancels the running statement of each backend in `pids`, from a connection of `pool` (not one of theirs). */
export async function cancelBackends(pool: Pick<pg.Pool, "query">, pids: number[]): Promise<number> {
  if (pids.length === 0) return 0;
  const { rows } = await pool.query<{ cancelled: number }>(cancelBackendsSql, [pids]);
  return rows[0]?.cancelled ?? 0;
}
