import type { JobType } from "bullmq";
import { CronExpressionParser } from "cron-parser";
import type pg from "pg";
import type { Config } from "../lib/config.js";
import type { AnyQueue, QueueStore } from "../lib/queue-store.js";
import { getContract, isQueueName, queueNames } from "./contracts.js";
import { readScheduleControls, type ScheduleControl } from "./schedule-controls.js";
import { scheduleRegistrations } from "./schedule-registrations.js";
import { declaredSchedules } from "./schedules.js";

/**
 * Schedule health (issue 8): for each schedule, its last and next fire and the
 * fires it missed, on either queue backend. BullMQ names every job a job
 * scheduler creates `repeat:<schedulerId>:<fireMillis>` (on Redis and in
 * PostgreSQL alike), so the fire times that produced a job are read from the
 * job ids alone, through BullMQ's own Queue API, without loading any job.
 *
 * A fire is missed when a time the cron pattern expected, since the schedule
 * was registered (and within the look-back window), has no job: the scheduler
 * was not running, or no worker took the previous fire so BullMQ never
 * created the next one.
 */
export interface ScheduleHealth {
  id: string;
  queue: string;
  cron: string;
  /** In src/queues/schedules.ts (with the config overrides). */
  declared: boolean;
  /** A BullMQ job scheduler with this id exists. */
  registered: boolean;
  lastFireAt: number | null;
  nextFireAt: number | null;
  missedFires: number;
  /** Paused by `dbjobs schedules pause`: its fires are skipped and not counted as missed. */
  paused: boolean;
}

/** Expected fires older than this are not checked. */
const LOOK_BACK_MS = 24 * 3600_000;
/** A fire is only missed once it is this late: the job for it is created when the previous one starts. */
const GRACE_MS = 5000;
/** Upper bound on expected fires examined per schedule (a per-second cron over a day). */
const MAX_EXPECTED_FIRES = 10_000;

/** Every state a job can be in (a paused queue keeps its jobs waiting, on both backends). */
const jobStates: JobType[] = ["completed", "failed", "delayed", "prioritized", "waiting-children", "wait", "active"];

/** Fire times (ms) of every job still in the queue that one of its job schedulers created, per scheduler id. */
async function fireTimesByScheduler(queue: AnyQueue): Promise<Map<string, number[]>> {
  const fires = new Map<string, number[]>();
  for (const id of await queue.getRanges(jobStates, 0, -1)) {
    if (!id.startsWith("repeat:")) continue;
    const separator = id.lastIndexOf(":");
    const millis = Number(id.slice(separator + 1));
    if (!Number.isFinite(millis) || separator <= "repeat:".length) continue;
    const schedulerId = id.slice("repeat:".length, separator);
    const list = fires.get(schedulerId) ?? [];
    list.push(millis);
    fires.set(schedulerId, list);
  }
  return fires;
}

/**
 * Completed jobs beyond the queue's retention count are deleted by BullMQ, so
 * fires older than the oldest retained completed job cannot be told from misses.
 * That job is the first of the completed ones by finish time on both backends.
 */
async function retentionHorizon(queue: AnyQueue, keepCount: number | undefined): Promise<number> {
  if (!keepCount) return 0;
  if ((await queue.getJobCountByTypes("completed")) < keepCount) return 0;
  // Retention may delete the oldest between the two reads; the next oldest is then the horizon.
  for (let attempt = 0; attempt < 3; attempt++) {
    const [oldestId] = await queue.getRanges(["completed"], 0, 0, true);
    if (oldestId === undefined) return 0;
    const finishedOn = (await queue.getJob(oldestId))?.finishedOn;
    if (finishedOn !== undefined) return finishedOn;
  }
  return 0;
}

/** Cron times in [fromMs, toMs], newest first, at most MAX_EXPECTED_FIRES. */
export function expectedFireTimes(cron: string, fromMs: number, toMs: number): number[] {
  if (toMs < fromMs) return [];
  const times: number[] = [];
  try {
    const interval = CronExpressionParser.parse(cron, { tz: "UTC", currentDate: new Date(toMs + 1) });
    while (times.length < MAX_EXPECTED_FIRES) {
      const time = interval.prev().getTime();
      if (time < fromMs) break;
      times.push(time);
    }
  } catch {
    // An unparsable pattern never registered, so nothing was expected.
  }
  return times;
}

function keepCountOf(queue: string): number | undefined {
  if (!isQueueName(queue)) return undefined;
  const removeOnComplete = getContract(queue).jobOptions.removeOnComplete;
  if (typeof removeOnComplete === "number") return removeOnComplete;
  if (typeof removeOnComplete === "object") return removeOnComplete.count;
  return undefined;
}

/**
 * `pool`: the application database, where pause state lives; without it (or
 * before `dbjobs migrate` made the table) no schedule counts as paused.
 */
export async function readScheduleHealth(options: { store: QueueStore; config: Config; pool?: Pick<pg.Pool, "query"> }): Promise<ScheduleHealth[]> {
  const { store, config } = options;
  const now = Date.now();
  const controls = options.pool ? await readScheduleControls(options.pool).catch(() => new Map<string, ScheduleControl>()) : new Map<string, ScheduleControl>();
  const declared = declaredSchedules(config);
  const registrations = await scheduleRegistrations(store, { connectTimeoutMs: config.QUEUE_CONNECT_TIMEOUT_MS }).read();
  const queuesToRead = new Set<string>([...declared.map((schedule) => schedule.queue), ...[...registrations.values()].map((r) => r.queue)]);

  const health: ScheduleHealth[] = [];
  for (const queueName of queueNames) {
    // On Redis it shares the store's connection: a Queue never issues blocking commands.
    const queue = await store.queue(queueName);
    try {
      if (!queuesToRead.has(queueName) && (await queue.getJobSchedulersCount()) === 0) continue;
      const schedulers = await queue.getJobSchedulers(0, -1, true);
      const fires = await fireTimesByScheduler(queue);
      const horizon = await retentionHorizon(queue, keepCountOf(queueName));
      const ids = new Set<string>([
        ...declared.filter((schedule) => schedule.queue === queueName).map((schedule) => schedule.id),
        ...schedulers.map((scheduler) => scheduler.key),
      ]);
      for (const id of ids) {
        const declaration = declared.find((schedule) => schedule.id === id && schedule.queue === queueName);
        const scheduler = schedulers.find((item) => item.key === id);
        const cron = declaration?.cron ?? scheduler?.pattern ?? (scheduler?.every ? `every ${scheduler.every}ms` : "");
        const times = fires.get(id) ?? [];
        const past = times.filter((time) => time <= now);
        const registration = registrations.get(id);
        const control = controls.get(id);
        let missedFires = 0;
        if (scheduler && registration && scheduler.pattern && !control?.paused) {
          const seen = new Set(times);
          // Fires expected while it was paused are not misses: count from its last resume.
          const from = Math.max(registration.registeredAt, now - LOOK_BACK_MS, horizon, control?.resumedAt ?? 0);
          missedFires = expectedFireTimes(scheduler.pattern, from, now - GRACE_MS).filter((time) => !seen.has(time)).length;
        }
        health.push({
          id,
          queue: queueName,
          cron,
          declared: declaration !== undefined,
          registered: scheduler !== undefined,
          lastFireAt: past.length ? Math.max(...past) : null,
          nextFireAt: scheduler?.next ?? null,
          missedFires,
          paused: control?.paused ?? false,
        });
      }
    } finally {
      await queue.close();
    }
  }
  return health;
}
