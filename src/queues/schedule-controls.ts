import type pg from "pg";
import type { Queryable } from "../audit/record-audit.js";
import type { Config } from "../lib/config.js";
import { DbjobsError } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import { recordOperatorAction } from "./operator-actions.js";
import type { Producer } from "./producer.js";
import { declaredSchedules, type ScheduleDefinition } from "./schedules.js";

/**
 * Operator control of one schedule: trigger (one run now, the next fire
 * unchanged), pause and resume. Pause state lives in
 * dbjobs.schedule_controls of the application database. A paused schedule's
 * fires still come from BullMQ (so its next fire stays where it was), but the
 * worker completes them at once without running the job, and schedule health
 * counts no misses while it is paused, nor before it last resumed.
 */
export interface ScheduleControl {
  paused: boolean;
  changedAt: number;
  changedBy: string;
  /** When it last resumed (epoch ms); misses before it are not counted. */
  resumedAt: number | null;
}

type Sql = Pick<pg.Pool, "query">;

// Returns every schedule's control row, times as epoch ms.
const readAllSql = `
SELECT "schedule_id", "paused", "changed_by",
       (extract(epoch FROM "changed_at") * 1000)::float8 AS "changed_at_ms",
       (extract(epoch FROM "resumed_at") * 1000)::float8 AS "resumed_at_ms"
  FROM "dbjobs"."schedule_controls"`;

export async function readScheduleControls(sql: Sql): Promise<Map<string, ScheduleControl>> {
  const { rows } = await sql.query<{ schedule_id: string; paused: boolean; changed_by: string; changed_at_ms: number; resumed_at_ms: number | null }>(
    readAllSql,
  );
  return new Map(
    rows.map((row) => [row.schedule_id, { paused: row.paused, changedAt: row.changed_at_ms, changedBy: row.changed_by, resumedAt: row.resumed_at_ms }]),
  );
}

// Takes $1 schedule id. True when it is paused.
const isPausedSql = `SELECT "paused" FROM "dbjobs"."schedule_controls" WHERE "schedule_id" = $1`;

export async function isSchedulePaused(sql: Sql, scheduleId: string): Promise<boolean> {
  const { rows } = await sql.query<{ paused: boolean }>(isPausedSql, [scheduleId]);
  return rows[0]?.paused === true;
}

// Takes $1 schedule id, $2 paused, $3 actor. Upserts; a resume stamps resumed_at. Returns whether it was paused before.
const setPausedSql = `
WITH previous AS (SELECT "paused" FROM "dbjobs"."schedule_controls" WHERE "schedule_id" = $1)
INSERT INTO "dbjobs"."schedule_controls" ("schedule_id", "paused", "changed_by", "resumed_at")
VALUES ($1, $2, $3, CASE WHEN $2 THEN NULL ELSE now() END)
ON CONFLICT ("schedule_id") DO UPDATE
   SET "paused" = EXCLUDED."paused", "changed_at" = now(), "changed_by" = EXCLUDED."changed_by",
       "resumed_at" = CASE WHEN EXCLUDED."paused" THEN "schedule_controls"."resumed_at" ELSE now() END
RETURNING coalesce((SELECT "paused" FROM previous), false) AS "was_paused"`;

export class UnknownScheduleError extends DbjobsError {
  constructor(id: string, known: string[]) {
    super("DBJOBS_UNKNOWN_SCHEDULE", `Unknown schedule "${id}". Declared schedules: ${known.join(", ")} (see \`dbjobs schedules\`).`, { retryable: false });
  }
}

export function findSchedule(config: Config, id: string): ScheduleDefinition {
  const schedules = declaredSchedules(config);
  const schedule = schedules.find((candidate) => candidate.id === id);
  if (!schedule)
    throw new UnknownScheduleError(
      id,
      schedules.map((candidate) => candidate.id),
    );
  return schedule;
}

interface ControlRequest {
  config: Config;
  logger: Logger;
  id: string;
  actor: string;
  via: "cli" | "http";
  /** The application database, to write the action to the audit log. */
  audit?: Queryable;
}

export async function setSchedulePaused(request: ControlRequest & { pool: Sql; paused: boolean }): Promise<{ id: string; paused: boolean; changed: boolean }> {
  findSchedule(request.config, request.id);
  const { rows } = await request.pool.query<{ was_paused: boolean }>(setPausedSql, [request.id, request.paused, request.actor]);
  const changed = (rows[0]?.was_paused ?? false) !== request.paused;
  await recordOperatorAction(
    { action: request.paused ? "schedule.pause" : "schedule.resume", target: request.id, actor: request.actor, via: request.via, detail: { changed } },
    request.logger,
    request.pool,
  );
  return { id: request.id, paused: request.paused, changed };
}

/** Enqueues one run of the schedule now, with its payload; its BullMQ job scheduler (and so its next fire) is not touched. */
export async function triggerSchedule(request: ControlRequest & { producer: Producer }): Promise<{ id: string; queue: string; jobId: string }> {
  const schedule = findSchedule(request.config, request.id);
  const job = await request.producer.enqueueUnknown(schedule.queue, schedule.payload);
  await recordOperatorAction(
    { action: "schedule.trigger", target: request.id, actor: request.actor, via: request.via, detail: { queue: schedule.queue, jobId: job.id } },
    request.logger,
    request.audit,
  );
  return { id: request.id, queue: schedule.queue, jobId: String(job.id) };
}
