import type { Queryable } from "./record-audit.js";

export interface AuditRow {
  id: string;
  at: Date;
  actor: string;
  source: string;
  action: string;
  target: string;
  parameters: Record<string, unknown>;
  affected: number | null;
  outcome: string;
}

export interface AuditQuery {
  /** @defaultValue 50 */
  limit?: number;
  /** Only rows at or after this time. */
  since?: Date;
}

/** The audit log, newest first. */
export async function listAudit(db: Queryable, query: AuditQuery = {}): Promise<AuditRow[]> {
  // Takes $1 the earliest time (or null for all) and $2 the row limit. Returns rows newest first.
  const { rows } = await db.query<AuditRow>(
    `SELECT "id", "at", "actor", "source", "action", "target", "parameters", "affected", "outcome"
       FROM "dbjobs"."audit_log"
      WHERE $1::timestamptz IS NULL OR "at" >= $1::timestamptz
      ORDER BY "at" DESC, "id" DESC
      LIMIT $2`,
    [query.since ?? null, query.limit ?? 50],
  );
  return rows;
}
