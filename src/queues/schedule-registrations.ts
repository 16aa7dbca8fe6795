import type pg from "pg";
import { MigrationError } from "../lib/errors.js";
import { type QueueStore, queueDatabasePool } from "../lib/queue-store.js";
import type { RedisConnection } from "../lib/redis.js";

/**
 * What `dbjobs scheduler` registered: schedule id → the queue and cron it was
 * registered with, and when. Schedule health counts missed fires from that
 * moment on, so an entry changes only when its queue or cron does. Kept where
 * the queues are: a Redis hash on the Redis backend, table
 * dbjobs.schedule_registrations on the PostgreSQL one.
 */
export interface ScheduleRegistration {
  queue: string;
  cron: string;
  /** Epoch ms. */
  registeredAt: number;
}

export interface ScheduleRegistrations {
  read(): Promise<Map<string, ScheduleRegistration>>;
  record(id: string, registration: ScheduleRegistration): Promise<void>;
  forget(id: string): Promise<void>;
}

/** Redis hash written by the scheduler: schedule id → JSON `{ queue, cron, registeredAt }`. */
export function registeredSchedulesKey(prefix: string): string {
  return `${prefix}:dbjobs:schedules`;
}

export function scheduleRegistrations(store: QueueStore, options: { connectTimeoutMs: number }): ScheduleRegistrations {
  if (store.redis) return redisRegistrations(store.redis, registeredSchedulesKey(store.prefix));
  return postgresRegistrations(() => queueDatabasePool(store, options.connectTimeoutMs));
}

function redisRegistrations(redis: RedisConnection, key: string): ScheduleRegistrations {
  return {
    async read() {
      const result = new Map<string, ScheduleRegistration>();
      for (const [id, json] of Object.entries(await redis.hgetall(key))) {
        try {
          result.set(id, JSON.parse(json) as ScheduleRegistration);
        } catch {
          // A hand-edited entry is ignored rather than failing the health read.
        }
      }
      return result;
    },
    async record(id, registration) {
      await redis.hset(key, id, JSON.stringify(registration));
    },
    async forget(id) {
      await redis.hdel(key, id);
    },
  };
}

// Returns every registration, registered_at as epoch ms.
const readSql = `
SELECT "schedule_id", "queue", "cron", (extract(epoch FROM "registered_at") * 1000)::float8 AS "registered_at_ms"
  FROM "dbjobs"."schedule_registrations"`;
// Takes $1 schedule id, $2 queue, $3 cron, $4 registered at (timestamptz). Inserts or replaces the registration.
const recordSql = `
INSERT INTO "dbjobs"."schedule_registrations" ("schedule_id", "queue", "cron", "registered_at") VALUES ($1, $2, $3, $4)
ON CONFLICT ("schedule_id") DO UPDATE SET "queue" = excluded."queue", "cron" = excluded."cron", "registered_at" = excluded."registered_at"`;
// Takes $1 schedule id. Deletes its registration, if any.
const forgetSql = `DELETE FROM "dbjobs"."schedule_registrations" WHERE "schedule_id" = $1`;

function postgresRegistrations(pool: () => Promise<pg.Pool>): ScheduleRegistrations {
  const query = async <R extends pg.QueryResultRow>(sql: string, values: unknown[] = []) => {
    try {
      return await (await pool()).query<R>(sql, values);
    } catch (err) {
      // 42P01 undefined_table: this database was migrated before the table existed, or not at all.
      if ((err as { code?: string }).code === "42P01")
        throw new MigrationError("Table dbjobs.schedule_registrations is missing from the queue database. Run `dbjobs migrate`.", { cause: err });
      throw err;
    }
  };
  return {
    async read() {
      const { rows } = await query<{ schedule_id: string; queue: string; cron: string; registered_at_ms: number }>(readSql);
      return new Map(rows.map((row) => [row.schedule_id, { queue: row.queue, cron: row.cron, registeredAt: Math.round(row.registered_at_ms) }]));
    },
    async record(id, registration) {
      await query(recordSql, [id, registration.queue, registration.cron, new Date(registration.registeredAt)]);
    },
    async forget(id) {
      await query(forgetSql, [id]);
    },
  };
}
