import type pg from "pg";
import { coerceError, DbjobsError } from "../lib/errors.js";
import { type AuditEntry, checkAuditWritable, recordAudit } from "./record-audit.js";

export class AuditNotRecordedError extends DbjobsError {
  constructor(action: string, cause: unknown) {
    super(
      "DBJOBS_AUDIT_NOT_RECORDED",
      `The ${action} was carried out, but its audit row could not be written (${coerceError(cause).message}). Check PostgreSQL and \`dbjobs migrate\`; tell whoever reviews the audit log.`,
      { cause, retryable: false },
    );
  }
}

/**
 * Runs an operator action and records it in the audit log with its outcome,
 * whether it succeeded or failed. The log is checked writable first, so an
 * action is refused, not left unaudited, when the database is down or not
 * migrated. `act` returns how many jobs it affected (null when it does not
 * count jobs), and parameters known only once it ran (a new job's id).
 *
 * One connection is held from the check to the row: the audit costs one
 * connection set-up, and the pool's slow-query timing (which counts waiting
 * for a connection) does not report it on every CLI verb.
 */
export async function audited<T>(
  pool: Pick<pg.Pool, "connect">,
  entry: Omit<AuditEntry, "affected" | "outcome">,
  act: () => Promise<{ value: T; affected: number | null; parameters?: Record<string, unknown> }>,
): Promise<T> {
  const db = await pool.connect();
  try {
    return await auditedOn(db, entry, act);
  } finally {
    db.release();
  }
}

async function auditedOn<T>(
  db: pg.PoolClient,
  entry: Omit<AuditEntry, "affected" | "outcome">,
  act: () => Promise<{ value: T; affected: number | null; parameters?: Record<string, unknown> }>,
): Promise<T> {
  await checkAuditWritable(db);
  let outcome: { value: T; affected: number | null; parameters?: Record<string, unknown> };
  try {
    outcome = await act();
  } catch (err) {
    await recordAudit(db, { ...entry, affected: null, outcome: `error: ${coerceError(err).message}` }).catch(() => undefined);
    throw err;
  }
  try {
    await recordAudit(db, { ...entry, parameters: { ...entry.parameters, ...outcome.parameters }, affected: outcome.affected, outcome: "ok" });
  } catch (err) {
    throw new AuditNotRecordedError(entry.action, err);
  }
  return outcome.value;
}
