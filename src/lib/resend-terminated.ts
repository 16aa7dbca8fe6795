import type pg from "pg";
import { errorCodes } from "./retry.js";

/** SQLSTATEs of a backend the server ended: pg_terminate_backend (57P01), shutdown (57P02), crash recovery (57P03). */
const terminatedCodes = new Set(["57P01", "57P02", "57P03"]);

/** How many times one query is sent in all; each resend takes another pooled connection. */
const maxSends = 3;

/**
 * Makes `pool.query` send a statement again, on another connection, when the
 * server terminated the connection it went out on (an operator's
 * pg_terminate_backend, a failover). Such a statement took no effect: a
 * terminated backend's transaction is rolled back, and one that committed
 * has its reply read before the termination arrives. Without this, a queue
 * store query that took an idle connection just as it was terminated (a
 * worker moving a failed job to its retry, say) fails, the job stays active
 * until it stalls, and a second such loss fails it for good. Only one-shot
 * `pool.query` calls are resent; a checked-out client's are its owner's.
 */
export function resendTerminatedQueries(pool: pg.Pool): void {
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  const resending = (...args: unknown[]): unknown => {
    // The callback form is not used by BullMQ or dbjobs; it keeps pg's own behaviour.
    if (typeof args[args.length - 1] === "function") return query(...args);
    return send(() => query(...args) as Promise<unknown>);
  };
  pool.query = resending as typeof pool.query;
}

async function send(attempt: () => Promise<unknown>): Promise<unknown> {
  for (let sends = 1; ; sends++) {
    try {
      return await attempt();
    } catch (err) {
      if (sends >= maxSends || !errorCodes(err).some((code) => terminatedCodes.has(code))) throw err;
    }
  }
}
