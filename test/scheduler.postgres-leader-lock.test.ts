import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { advisoryLockHolder, lockNames } from "../src/lib/advisory-locks.js";
import { type Config, queueStoreOptions } from "../src/lib/config.js";
import { createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import { readScheduleHealth } from "../src/queues/schedule-health.js";
import { scheduleRegistrations } from "../src/queues/schedule-registrations.js";
import { type RunningScheduler, startScheduler } from "../src/queues/scheduler.js";
import type { ScheduleDefinition } from "../src/queues/schedules.js";
import { startTcpProxy } from "./support/tcp-proxy.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * The scheduler's lock on the PostgreSQL queue backend: a session-level
 * advisory lock (lockNames.scheduler) on a connection the leader holds. These
 * tests run on PostgreSQL whatever TEST_QUEUE_BACKEND says; the last one also
 * uses Redis, to compare schedule health on both backends.
 */
const leaseMs = 1500;
const tickMs = leaseMs / 3;

function testSchedule(id: string, cron = "0 * * * *"): ScheduleDefinition {
  return { id, queue: "invoice-totals", cron, payload: { all: true }, overrideVariable: "SCHEDULE_TRANSACTION_RETRY" };
}

/**
 * A TCP proxy to PostgreSQL that can go silent, as a link to a failed-over
 * primary does: once frozen it forwards nothing either way and closes nothing,
 * until a side closes its own end.
 */
async function startFreezableProxy(target: URL): Promise<{ url(database: string): string; freeze(): void; close(): Promise<void> }> {
  let frozen = false;
  const proxy = await startTcpProxy(target.href, (client, upstream) => {
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on("data", (chunk) => {
        if (!frozen) to.write(chunk);
      });
      from.on("end", () => to.destroy());
    }
  });
  const port = new URL(proxy.url).port;
  return {
    url: (database) => `postgresql://${target.username}@127.0.0.1:${port}/${database}`,
    freeze: () => {
      frozen = true;
    },
    close: () => proxy.close(),
  };
}

describe("scheduler on PostgreSQL: the advisory leader lock", () => {
  let database: TestDatabase;
  let admin: pg.Client;
  let config: Config;
  const running: RunningScheduler[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    config = testConfig(database.url, { QUEUE_BACKEND: "postgres" });
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((scheduler) => scheduler.close()));
  });

  afterAll(async () => {
    await admin?.end();
    await database?.drop();
  });

  function start(schedules: ScheduleDefinition[], configOf: Config = config) {
    const log = memoryLogger("info");
    const scheduler = startScheduler({ config: configOf, logger: log.logger, schedules, leaseMs });
    running.push(scheduler);
    return { scheduler, lines: log.lines };
  }

  const lockHolder = () => advisoryLockHolder(admin, lockNames.scheduler());

  it("two schedulers on one queue database: one holds the lock and registers, the other stands by", async () => {
    const [a, b] = [start([testSchedule("test-two")]), start([testSchedule("test-two")])] as const;
    await Promise.all([a.scheduler.ready, b.scheduler.ready]);
    await sleep(3 * tickMs);

    const leaders = [a, b].filter((entry) => entry.scheduler.isLeader());
    expect(leaders).toHaveLength(1);
    const [leader] = leaders;
    const standby = leader === a ? b : a;
    expect(leader?.lines().filter((line) => line.msg === "schedule registered")).toHaveLength(1);
    expect(standby.lines().filter((line) => line.msg === "schedule registered")).toEqual([]);
    expect(standby.lines().some((line) => line.msg === "another scheduler holds the lease: standing by")).toBe(true);

    // The lock is held by a scheduler's session, and the registration is recorded beside the queues.
    const holder = await lockHolder();
    const { rows: sessions } = await admin.query<{ application_name: string }>("SELECT application_name FROM pg_stat_activity WHERE pid = $1", [holder]);
    expect(sessions).toEqual([{ application_name: "dbjobs:scheduler" }]);
    const { rows } = await admin.query<{ schedule_id: string; queue: string; cron: string }>(
      `SELECT schedule_id, queue, cron FROM dbjobs.schedule_registrations`,
    );
    expect(rows).toEqual([{ schedule_id: "test-two", queue: "invoice-totals", cron: "0 * * * *" }]);

    // Closing the leader frees the lock at once; the standby takes over at its next poll.
    await leader?.scheduler.close();
    expect(await lockHolder()).not.toBe(holder);
    await waitFor("the standby to take over", async () => standby.scheduler.isLeader(), 5 * tickMs);
  });

  it("pg_terminate_backend on the leader's session: it stands down at once and the other takes over within a few ticks", async () => {
    const [a, b] = [start([testSchedule("test-kill")]), start([testSchedule("test-kill")])] as const;
    await Promise.all([a.scheduler.ready, b.scheduler.ready]);
    await waitFor("one leader", async () => [a, b].filter((entry) => entry.scheduler.isLeader()).length === 1, 5 * tickMs);
    const leader = a.scheduler.isLeader() ? a : b;
    const standby = leader === a ? b : a;
    const killedPid = await lockHolder();
    expect(killedPid).not.toBeNull();

    // Watch both from now on: at no moment may two of them lead.
    let bothLed = false;
    const watch = setInterval(() => {
      if (a.scheduler.isLeader() && b.scheduler.isLeader()) bothLed = true;
    }, 5);
    try {
      const killedAt = Date.now();
      const { rows } = await admin.query<{ killed: boolean }>("SELECT pg_terminate_backend($1) AS killed", [killedPid]);
      expect(rows[0]?.killed).toBe(true);
      await waitFor("the leader to stand down", async () => !leader.scheduler.isLeader(), 4 * tickMs, 5);
      await waitFor("the standby to take over", async () => standby.scheduler.isLeader(), 4 * tickMs);
      expect(Date.now() - killedAt).toBeLessThan(4 * tickMs);
      const newHolder = await lockHolder();
      expect(newHolder).not.toBeNull();
      expect(newHolder).not.toBe(killedPid);

      // The old leader said why, and from then on only stands by: it never registers or leads again.
      const lostAt = leader.lines().findIndex((line) => line.msg === "lost the scheduler lease; standing by");
      expect(lostAt).toBeGreaterThanOrEqual(0);
      await sleep(4 * tickMs);
      const after = leader.lines().slice(lostAt + 1);
      expect(after.filter((line) => line.msg === "holding the scheduler lease: registering schedules" || line.msg === "schedule registered")).toEqual([]);
      expect(leader.scheduler.isLeader()).toBe(false);
      expect(standby.scheduler.isLeader()).toBe(true);
      expect(await lockHolder()).toBe(newHolder);
    } finally {
      clearInterval(watch);
    }
    expect(bothLed).toBe(false);
  });

  it("a leader whose connection goes silent stands down once its self-check times out; the other then takes over", async () => {
    const proxy = await startFreezableProxy(new URL(database.url));
    try {
      const a = start([testSchedule("test-silent")], testConfig(proxy.url(database.name), { QUEUE_BACKEND: "postgres" }));
      await a.scheduler.ready;
      expect(a.scheduler.isLeader()).toBe(true);
      const b = start([testSchedule("test-silent")]);
      await b.scheduler.ready;
      expect(b.scheduler.isLeader()).toBe(false);

      let bothLed = false;
      const watch = setInterval(() => {
        if (a.scheduler.isLeader() && b.scheduler.isLeader()) bothLed = true;
      }, 5);
      try {
        proxy.freeze();
        const frozenAt = Date.now();
        // Nothing reports an error: only the self-check (at most leaseMs, each tick) can tell.
        await waitFor("the silent leader to stand down", async () => !a.scheduler.isLeader(), leaseMs + 3 * tickMs);
        expect(Date.now() - frozenAt).toBeGreaterThanOrEqual(leaseMs - tickMs);
        expect(a.lines().some((line) => line.msg === "lost the scheduler lease; standing by")).toBe(true);
        // Ending its connection ends the backend that held the lock, so the other can take it.
        await waitFor("the other to take over", async () => b.scheduler.isLeader(), 6 * tickMs);
      } finally {
        clearInterval(watch);
      }
      expect(bothLed).toBe(false);
    } finally {
      // The proxy first: the silent leader's connections then end at once instead of its close waiting on a frozen link.
      await proxy.close();
      await Promise.all(running.splice(0).map((scheduler) => scheduler.close()));
    }
  });

  it("schedule health: the same fires seen and missed on PostgreSQL as on Redis", async () => {
    const redisConfig = testConfig(database.url, { QUEUE_BACKEND: "redis" });
    const stores: QueueStore[] = [config, redisConfig].map((each) =>
      createQueueStore({ ...queueStoreOptions(each), role: "worker", logger: memoryLogger("warn").logger }),
    );
    const hour = 3600_000;
    const hourStart = Math.floor(Date.now() / hour) * hour;
    const schedule = testSchedule("test-parity");
    try {
      // The same history on both: registered about three hours ago, one fire an hour ago, nothing else.
      for (const store of stores) {
        const queue = await store.queue(schedule.queue);
        await queue.upsertJobScheduler(schedule.id, { pattern: schedule.cron, tz: "UTC" }, { name: schedule.id, data: schedule.payload });
        await queue.add(schedule.id, schedule.payload, { jobId: `repeat:${schedule.id}:${hourStart - hour}` });
        await queue.close();
        await scheduleRegistrations(store, { connectTimeoutMs: 3000 }).record(schedule.id, {
          queue: schedule.queue,
          cron: schedule.cron,
          registeredAt: hourStart - 3 * hour + 60_000,
        });
      }
      const [onPostgres, onRedis] = await Promise.all(
        stores.map(async (store, index) => {
          const health = await readScheduleHealth({ store, config: index === 0 ? config : redisConfig });
          return health.find((entry) => entry.id === schedule.id);
        }),
      );
      expect(onPostgres).toEqual(onRedis);
      // Missed: two hours ago and (past the grace period) this hour's start; seen: an hour ago.
      expect(onPostgres).toMatchObject({ queue: "invoice-totals", registered: true, declared: false, lastFireAt: hourStart - hour });
      expect(onPostgres?.missedFires).toBe(Date.now() - 5000 >= hourStart ? 2 : 1);
      expect(onPostgres?.nextFireAt).toBe(hourStart + hour);
    } finally {
      const redisQueue = await (stores[1] as QueueStore).queue(schedule.queue);
      await redisQueue.obliterate({ force: true });
      await redisQueue.close();
      await stores[1]?.redis?.del(`${redisConfig.QUEUE_PREFIX}:dbjobs:schedules`);
      await Promise.all(stores.map((store) => store.close()));
    }
  });
});
