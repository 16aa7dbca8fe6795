import type pg from "pg";

/** Who did what to which jobs, when, and how it ended: one row of dbjobs.audit_log. */
export interface AuditEntry {
  /** The dashboard user; on the CLI, DBJOBS_ACTOR or else the OS user. */
  actor: string;
  source: "cli" | "dashboard";
  /** retry, clean, pause, resume, enqueue. */
  action: string;
  /** A queue, `<queue>/<job id>`, or `<queue> fingerprint <f>`. */
  target: string;
  /** The options the action was given (never a payload's personal fields: see auditParameters). */
  parameters: Record<string, unknown>;
  /** Jobs affected; null when the action does not count jobs (pause, resume) or failed before acting. */
  affected: number | null;
  /** "ok" or "error: <message>". */
  outcome: string;
}

export type Queryable = Pick<pg.Pool, "query">;

// Takes $1 actor, $2 source, $3 action, $4 target, $5 parameters (JSON), $6 affected, $7 outcome. Inserts one row.
const insertSql = `
INSERT INTO "dbjobs"."audit_log" ("actor", "source", "action", "target", "parameters", "affected", "outcome")
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)`;

/** Appends one row to the audit log (append-only: no code path updates or deletes one). */
export async function recordAudit(db: Queryable, entry: AuditEntry): Promise<void> {
  await db.query(insertSql, [entry.actor, entry.source, entry.action, entry.target, JSON.stringify(entry.parameters), entry.affected, entry.outcome]);
}

/** Fails fast, before an operator acts, when the audit log cannot be written (database down or not migrated). */
export async function checkAuditWritable(db: Queryable): Promise<void> {
  await db.query(`SELECT 1 FROM "dbjobs"."audit_log" LIMIT 0`);
}
