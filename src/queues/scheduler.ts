import { setTimeout as sleep } from "node:timers/promises";
import type { JobSchedulerJson } from "bullmq";
import { type Config, queueStoreOptions } from "../lib/config.js";
import type { Logger } from "../lib/logger.js";
import { type AnyQueue, createQueueStore, type QueueStore } from "../lib/queue-store.js";
import { getContract, queueNames } from "./contracts.js";
import { type ScheduleRegistrations, scheduleRegistrations } from "./schedule-registrations.js";
import { type LeaderLock, schedulerLock } from "./scheduler-lock.js";
import { declaredSchedules, type ScheduleDefinition } from "./schedules.js";
import { validatePayload } from "./validate-payload.js";

/**
 * `dbjobs scheduler`: registers the declared cron schedules as BullMQ job
 * schedulers (UTC) and removes the ones no longer declared, on either queue
 * backend. However many start, only the holder of the scheduler lock
 * registers (scheduler-lock.ts: a lease in Redis, a session-level advisory
 * lock on PostgreSQL); the others stand by and one takes over when the holder
 * goes (BullMQ #2876, #3085, #3381: several instances upserting at once
 * double-fire or drop schedules). A holder that learns it lost the lock stops
 * registering before its next write and stands by.
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
  /** The Redis lease; on PostgreSQL, how long the holder's self-check may take. Standbys poll every third of it. @defaultValue config.SCHEDULER_LEASE_MS */
  leaseMs?: number;
  /** How often the holder checks that every schedule is still registered (e.g. after the queue store lost its data). @defaultValue 30000 */
  reconcileMs?: number;
}

export interface RegistrationOutcome {
  registered: string[];
  unchanged: string[];
  skipped: { id: string; reason: string }[];
  removed: string[];
}

export interface RunningScheduler {
  /** True while this process holds the scheduler lock. */
  isLeader(): boolean;
  /** Resolves after the first lock attempt (and registration, if it won). */
  ready: Promise<void>;
  /** Stops, and releases the lock so a standby takes over at once. */
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

/** Brings BullMQ's job schedulers in line with `schedules`. Only the lock holder calls this. */
export async function registerSchedules(options: {
  store: QueueStore;
  registrations: ScheduleRegistrations;
  schedules: ScheduleDefinition[];
  logger: Logger;
  /** Upsert even when unchanged (first registration after taking the lock is not forced). @defaultValue false */
  force?: boolean;
  /** Aborted when this process stops leading: registration stops before its next write, throwing the signal's reason. */
  signal?: AbortSignal;
}): Promise<RegistrationOutcome> {
  const { store, registrations, schedules, logger, signal } = options;
  const outcome: RegistrationOutcome = { registered: [], unchanged: [], skipped: [], removed: [] };
  const keep = new Set<string>();
  const registered = await registrations.read();
  const queues = new Map<string, AnyQueue>();
  const queueOf = async (name: string) => {
    let queue = queues.get(name);
    if (!queue) {
      queue = await store.queue(name);
      queues.set(name, queue);
    }
    return queue;
  };
  try {
    for (const schedule of schedules) {
      signal?.throwIfAborted();
      const contract = getContract(schedule.queue);
      keep.add(schedule.id);
      try {
        validatePayload(contract.name, contract.payload, schedule.payload);
        const queue = await queueOf(schedule.queue);
        const existing = await queue.getJobScheduler(schedule.id);
        if (!options.force && sameSchedule(existing, schedule)) {
          outcome.unchanged.push(schedule.id);
        } else {
          signal?.throwIfAborted();
          const { jobId: _jobId, delay: _delay, deduplication: _dedup, ...templateOpts } = contract.jobOptions;
          await queue.upsertJobScheduler(schedule.id, { pattern: schedule.cron, tz: "UTC" }, { name: schedule.id, data: schedule.payload, opts: templateOpts });
          outcome.registered.push(schedule.id);
          logger.info({ schedule: schedule.id, queue: schedule.queue, cron: schedule.cron }, "schedule registered");
        }
        const previous = registered.get(schedule.id);
        if (!previous || previous.cron !== schedule.cron || previous.queue !== schedule.queue) {
          await registrations.record(schedule.id, { queue: schedule.queue, cron: schedule.cron, registeredAt: Date.now() });
        }
      } catch (err) {
        // Lost the lock: not this schedule's fault, and nothing more may be written.
        if (signal?.aborted) throw err;
        // Keep whatever was registered before: a typo in an override must not silently drop a working schedule.
        const reason = `${(err as Error).message}. Fix ${String(schedule.overrideVariable)} (a 5-field cron, or 6 fields with seconds first).`;
        outcome.skipped.push({ id: schedule.id, reason });
        logger.error({ schedule: schedule.id, queue: schedule.queue, cron: schedule.cron, err }, "schedule not registered");
      }
    }

    for (const name of queueNames) {
      const queue = await queueOf(name);
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
        signal?.throwIfAborted();
        await queue.removeJobScheduler(scheduler.key);
        await registrations.forget(scheduler.key);
        outcome.removed.push(scheduler.key);
        logger.info({ schedule: scheduler.key, queue: name }, "schedule removed: no longer declared");
      }
    }
    for (const id of registered.keys()) {
      if (!keep.has(id) && !outcome.removed.includes(id)) {
        signal?.throwIfAborted();
        await registrations.forget(id);
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
  // PostgreSQL: one connection holds the lock while leading, the others serve BullMQ's queries.
  const store = createQueueStore({ ...queueStoreOptions(config), prefix, role: "worker", poolSize: 4, applicationName: "dbjobs:scheduler", logger });
  const lock: LeaderLock = schedulerLock({ store, leaseMs, connectTimeoutMs: config.QUEUE_CONNECT_TIMEOUT_MS });
  const registrations = scheduleRegistrations(store, { connectTimeoutMs: config.QUEUE_CONNECT_TIMEOUT_MS });
  const register = () => lock.whileHeld((signal) => registerSchedules({ store, registrations, schedules, logger, signal }));

  let leader = false;
  let stopped = false;
  let lastReconcile = 0;
  const wake = new AbortController();

  const standDown = (reason: unknown) => {
    leader = false;
    logger.warn({ lock: lock.description, reason: reason instanceof Error ? reason.message : String(reason) }, "lost the scheduler lease; standing by");
  };

  const tick = async () => {
    if (leader) {
      if (!(await lock.stillHeld())) return standDown("the lock could not be confirmed (store unreachable, too slow, or the session ended)");
      if (Date.now() - lastReconcile >= reconcileMs) {
        lastReconcile = Date.now();
        await register();
      }
      return;
    }
    if (await lock.acquire()) {
      leader = true;
      // Stand by the moment the lock is known lost (a killed session reports at once), not a tick later.
      lock.signal.addEventListener("abort", (event) => {
        if (leader && !stopped) standDown((event.target as AbortSignal).reason);
      });
      logger.info({ leaseMs, lock: lock.description }, "holding the scheduler lease: registering schedules");
      lastReconcile = Date.now();
      const outcome = await register();
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
      const ledBefore = leader;
      try {
        await tick();
      } catch (err) {
        // A registration cut short by a lost lock must not leave this process believing it leads.
        if (leader && !(await lock.stillHeld().catch(() => false))) standDown(err);
        // Work cut short by a stand-down already logged is no news.
        else if (leader || !ledBefore) logger.warn({ err }, "scheduler tick failed; will retry");
      }
      if (!leader && !announcedStandby && !stopped) {
        announcedStandby = true;
        logger.info({ leaseMs, lock: lock.description }, "another scheduler holds the lease: standing by");
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
        // A tick stuck on an unreachable store must not hold up shutdown; the lock then ends by itself (lease expiry, session end).
        await Promise.race([running, sleep(2000)]);
        const wasLeader = leader;
        leader = false;
        // Always: an acquire still in flight must not take the lock after this.
        await lock.release().catch((err: unknown) => logger.warn({ err }, "could not release the scheduler lease; it ends by itself"));
        if (wasLeader) logger.info({ lock: lock.description }, "released the scheduler lease");
        await store.close();
      })();
      return closing;
    },
  };
}
