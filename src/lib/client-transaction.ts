import type pg from "pg";
import { retryOnConflict } from "./retry.js";

/**
 * A transaction on one pg connection (DDL, LOCK TABLE and advisory-locked
 * runs need a connection of their own, which Prisma's pool does not give).
 * The whole transaction is rerun on serialization failures and deadlocks
 * through the project's conflict-retry helper.
 */
export interface ClientTransactionOptions {
  /** How long any lock may be waited for before the statement fails (SQLSTATE 55P03). @defaultValue 5000 */
  lockTimeoutMs?: number;
  /** @defaultValue 5 */
  maxAttempts?: number;
}

export function inClientTransaction<T>(client: pg.ClientBase, work: () => Promise<T>, options: ClientTransactionOptions = {}): Promise<T> {
  const lockTimeoutMs = Math.max(1, Math.round(options.lockTimeoutMs ?? 5000));
  return retryOnConflict(
    async () => {
      try {
        // A DDL statement queued behind a long query would block every later
        // reader of the table; failing fast and trying again later is kinder.
        await client.query(`BEGIN; SET LOCAL lock_timeout = ${lockTimeoutMs}`);
        const value = await work();
        await client.query("COMMIT");
        return value;
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw err;
      }
    },
    { maxAttempts: options.maxAttempts ?? 5 },
  );
}
