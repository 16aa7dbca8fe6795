import { setTimeout as sleep } from "node:timers/promises";
import { type JobSchedulerJson, Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../lib/config.js";
import type { Logger } from "../lib/logger.js";
import { createRedis } from "../lib/redis.js";
import { getContract, queueNames } from "./contracts.js";
import { readRegistrations, registeredSchedulesKey, type ScheduleRegistration } from "./schedule-health.js";
import { LeaseLock, schedulerLockKey } from "./scheduler-lock.js";
import { declaredSchedules, type ScheduleDefinition } from "./schedules.js";
import { validatePayload } from "./validate-payload.js";

/**
 * `dbjobs scheduler`: registers the declared cron schedules as BullMQ job
 * schedulers (UTC) and removes the ones no longer declared. However many
 * start, only the holder of a Redis lease registers; the others stand by and
 * one takes over when the holder's lease expires (BullMQ #2876, #3085, #3381:
 * several instances upserting at once double-fire or drop schedules).
 *
 * A schedule whose BullMQ scheduler already has the same pattern, time zone and
 * payload is left alone: upserting replaces the pending job, and if that job
 * was already waiting for a worker its fire would be lost.
 */
export interface SchedulerOptions {
  config: Config;
  logger: Logger;
  /** @defaultValue config.QUEUE_PREFIX */
  prefix?: string;
  /** @defaultValue declaredSchedules(config) */
  schedules?: ScheduleDefinition[];
  /** @defaultValue config.SCHEDULER_LEASE_MS */
  leaseMs?: number;
  /** How often the holder checks that every schedule is still registered (e.g. after Redis lost its data). @defaultValue 30000 */
  reconcileMs?: number;
}

export interface RegistrationOutcome {
  registered: string[];
  unchanged: string[];
  skipped: { id: string; reason: string }[];
  removed: string[];
}

export interface RunningScheduler {
  /** True while this process holds the lease. */
  isLeader(): boolean;
  /** Resolves after the first lock attempt (and registration, if it won). */
  ready: Promise<void>;
  /** Stops, and releases the lease so a standby takes over at once. */
  close(): Promise<void>;
}

function sameSchedule(existing: JobSchedulerJson | undefined, schedule: ScheduleDefinition): boolean {
  return (
    existing !== undefined &&
    existing.pattern === schedule.cron &&
    existing.tz === "UTC" &&
    existing.name === schedule.id &&
    JSON.stringify(existing.template?.data ?? {}) === JSON.stringify(schedule.payload)
  );
}

/** Brings BullMQ's job schedulers in line with `schedules`. Only the lease holder calls this. */
export async function registerSchedules(options: {
  redis: Redis;
  prefix: string;
  schedules: ScheduleDefinition[];
  logger: Logger;
  /** Upsert even when unchanged (first registration after taking the lease is not forced). @defaultValue false */
  force?: boolean;
}): Promise<RegistrationOutcome> {
  const { redis, prefix, schedules, logger } = options;
  const outcome: RegistrationOutcome = { registered: [], unchanged: [], skipped: [], removed: [] };
  const keep = new Set<string>();
  const registrations = await readRegistrations(redis, prefix);
  const queues = new Map<string, Queue>();
  const queueOf = (name: string) => {
    let queue = queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: redis, prefix });
      queues.set(name, queue);
    }
    return queue;
  };
  try {
    for (const schedule of schedules) {
      const contract = getContract(schedule.queue);
      keep.add(schedule.id);
      try {
        validatePayload(contract.name, contract.payload, schedule.payload);
        const queue = queueOf(schedule.queue);
        const existing = await queue.getJobScheduler(schedule.id);
        if (!options.force && sameSchedule(existing, schedule)) {
          outcome.unchanged.push(schedule.id);
        } else {
          const { jobId: _jobId, delay: _delay, deduplication: _dedup, ...templateOpts } = contract.jobOptions;
          await queue.upsertJobScheduler(schedule.id, { pattern: schedule.cron, tz: "UTC" }, { name: schedule.id, data: schedule.payload, opts: templateOpts });
          outcome.registered.push(schedule.id);
          logger.info({ schedule: schedule.id, queue: schedule.queue, cron: schedule.cron }, "schedule registered");
        }
        const previous = registrations.get(schedule.id);
        if (!previous || previous.cron !== schedule.cron || previous.queue !== schedule.queue) {
          const registration: ScheduleRegistration = { queue: schedule.queue, cron: schedule.cron, registeredAt: Date.now() };
          await redis.hset(registeredSchedulesKey(prefix), schedule.id, JSON.stringify(registration));
        }
      } catch (err) {
        // Keep whatever was registered before: a typo in an override must not silently drop a working schedule.
        const reason = `${(err as Error).message}. Fix ${String(schedule.overrideVariable)} (a 5-field cron, or 6 fields with seconds first).`;
        outcome.skipped.push({ id: schedule.id, reason });
        logger.error({ schedule: schedule.id, queue: schedule.queue, cron: schedule.cron, err }, "schedule not registered");
      }
    }

    for (const name of queueNames) {
      const queue = queueOf(name);
      let existing: JobSchedulerJson[];
      try {
        existing = await queue.getJobSchedulers(0, -1, true);
      } catch (err) {
        logger.warn({ queue: name, err }, "could not list job schedulers");
        continue;
      }
      for (const scheduler of existing) {
        const declaredHere = schedules.some((schedule) => schedule.id === scheduler.key && schedule.queue === name);
        // Every declared schedule is kept, so one that failed to register keeps its previous scheduler.
        if (declaredHere && keep.has(scheduler.key)) continue;
        await queue.removeJobScheduler(scheduler.key);
        await redis.hdel(registeredSchedulesKey(prefix), scheduler.key);
        outcome.removed.push(scheduler.key);
        logger.info({ schedule: scheduler.key, queue: name }, "schedule removed: no longer declared");
      }
    }
    for (const id of registrations.keys()) {
      if (!keep.has(id) && !outcome.removed.includes(id)) {
        await redis.hdel(registeredSchedulesKey(prefix), id);
      }
    }
  } finally {
    await Promise.all([...queues.values()].map((queue) => queue.close()));
  }
  return outcome;
}

export function startScheduler(options: SchedulerOptions): RunningScheduler {
  const { config } = options;
  const prefix = options.prefix ?? config.QUEUE_PREFIX;
  const logger = options.logger.child({ component: "scheduler" });
  const schedules = options.schedules ?? declaredSchedules(config);
  const leaseMs = options.leaseMs ?? config.SCHEDULER_LEASE_MS;
  const tickMs = Math.max(100, Math.floor(leaseMs / 3));
  const reconcileMs = options.reconcileMs ?? 30_000;
  const redis = createRedis(config.REDIS_URL, "worker", logger);
  const lock = new LeaseLock({ redis, key: schedulerLockKey(prefix), leaseMs });

  let leader = false;
  let stopped = false;
  let lastReconcile = 0;
  const wake = new AbortController();

  const tick = async () => {
    if (leader) {
      if (!(await lock.extend())) {
        leader = false;
        logger.warn("lost the scheduler lease (Redis unreachable or too slow); standing by");
        return;
      }
      if (Date.now() - lastReconcile >= reconcileMs) {
        lastReconcile = Date.now();
        // Registering can outlast the lease (many schedules, a slow Redis): keep it meanwhile.
        await lock.keepExtended(() => registerSchedules({ redis, prefix, schedules, logger }));
      }
      return;
    }
    if (await lock.acquire()) {
      leader = true;
      logger.info({ leaseMs }, "holding the scheduler lease: registering schedules");
      lastReconcile = Date.now();
      const outcome = await lock.keepExtended(() => registerSchedules({ redis, prefix, schedules, logger }));
      logger.info(
        { registered: outcome.registered, unchanged: outcome.unchanged, removed: outcome.removed, skipped: outcome.skipped.map((skip) => skip.id) },
        "schedules in place",
      );
    }
  };

  let announcedStandby = false;
  const loop = async (onFirst: () => void) => {
    let first = true;
    while (!stopped) {
      try {
        await tick();
      } catch (err) {
        logger.warn({ err }, "scheduler tick failed; will retry");
      }
      if (!leader && !announcedStandby && !stopped) {
        announcedStandby = true;
        logger.info({ leaseMs }, "another scheduler holds the lease: standing by");
      }
      if (leader) announcedStandby = false;
      if (first) {
        first = false;
        onFirst();
      }
      await sleep(tickMs, undefined, { signal: wake.signal }).catch(() => undefined);
    }
  };

  let resolveReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve;
  });
  const running = loop(resolveReady);

  let closing: Promise<void> | undefined;
  return {
    isLeader: () => leader,
    ready,
    close() {
      closing ??= (async () => {
        stopped = true;
        wake.abort();
        // A tick stuck on an unreachable Redis must not hold up shutdown; the lease then just expires.
        await Promise.race([running, sleep(2000)]);
        if (leader) {
          await lock.release().catch((err: unknown) => logger.warn({ err }, "could not release the scheduler lease; it expires by itself"));
          leader = false;
          logger.info("released the scheduler lease");
        }
        redis.disconnect();
      })();
      return closing;
    },
  };
}
