import type pg from "pg";
import type { Logger } from "./logger.js";

/**
 * Error handling every pg pool of ours needs, in one place.
 *
 * pg-pool listens for a connection's 'error' only while it is idle in the
 * pool; a connection someone holds (BullMQ's backend between two statements,
 * Prisma's adapter, a job) has no listener unless the holder adds one, and an
 * 'error' without a listener ends the process. A server-side termination
 * (failover, pg_terminate_backend) can reach a held connection between two
 * statements, or in the same packet as the answer to its last one before it
 * is given back. Every connection therefore gets a listener of its own when
 * the pool makes it; the holder still learns of the loss from its next
 * statement, which fails.
 *
 * The idle case logs the error's code and message only: pg-pool hangs the
 * whole client on the error (`err.client`), connection parameters included.
 */
export function handlePoolErrors(pool: pg.Pool, logger: Logger | undefined, what: string): void {
  pool.on("error", (err) => logger?.warn({ err: briefly(err) }, `idle ${what} connection lost; the pool will reconnect`));
  pool.on("connect", (client) => {
    client.on("error", (err) => logger?.debug({ err: briefly(err) }, `${what} connection lost while in use; its next statement fails`));
  });
}

function briefly(err: Error & { code?: string }): { message: string; code?: string } {
  return { message: err.message, ...(err.code ? { code: err.code } : {}) };
}
