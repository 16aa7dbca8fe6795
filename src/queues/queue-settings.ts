import type pg from "pg";

/**
 * The concurrency operators set with `dbjobs scale`, in table
 * dbjobs.queue_settings of the application's database (DATABASE_URL).
 */
export const concurrencyRange = { min: 1, max: 1000 } as const;

type Sql = Pick<pg.Pool, "query">;

// Takes $1 queue. Returns its stored concurrency, if any.
const readSql = `SELECT "concurrency" FROM "dbjobs"."queue_settings" WHERE "queue" = $1`;

export async function readQueueConcurrency(sql: Sql, queue: string): Promise<number | undefined> {
  const { rows } = await sql.query<{ concurrency: number }>(readSql, [queue]);
  return rows[0]?.concurrency;
}

// Returns every stored concurrency.
const readAllSql = `SELECT "queue", "concurrency" FROM "dbjobs"."queue_settings"`;

export async function readAllQueueConcurrency(sql: Sql): Promise<Map<string, number>> {
  const { rows } = await sql.query<{ queue: string; concurrency: number }>(readAllSql);
  return new Map(rows.map((row) => [row.queue, row.concurrency]));
}

// Takes $1 queue, $2 concurrency, $3 actor. Upserts; returns the previous value (null if none).
const writeSql = `
WITH previous AS (SELECT "concurrency" FROM "dbjobs"."queue_settings" WHERE "queue" = $1)
INSERT INTO "dbjobs"."queue_settings" ("queue", "concurrency", "updated_by") VALUES ($1, $2, $3)
ON CONFLICT ("queue") DO UPDATE SET "concurrency" = EXCLUDED."concurrency", "updated_at" = now(), "updated_by" = EXCLUDED."updated_by"
RETURNING (SELECT "concurrency" FROM previous) AS "previous"`;

export async function writeQueueConcurrency(sql: Sql, queue: string, concurrency: number, actor: string): Promise<number | null> {
  const { rows } = await sql.query<{ previous: number | null }>(writeSql, [queue, concurrency, actor]);
  return rows[0]?.previous ?? null;
}
