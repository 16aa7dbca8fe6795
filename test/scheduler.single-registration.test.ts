import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, queueStoreOptions } from "../src/lib/config.js";
import { type AnyQueue, createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import type { RedisConnection } from "../src/lib/redis.js";
import { queueNames } from "../src/queues/contracts.js";
import { readScheduleHealth } from "../src/queues/schedule-health.js";
import { type RunningScheduler, startScheduler } from "../src/queues/scheduler.js";
import { schedulerLock } from "../src/queues/scheduler-lock.js";
import { declaredSchedules, type ScheduleDefinition } from "../src/queues/schedules.js";
import { cliEnv, spawnCli } from "./support/spawn-cli.js";
import {
  createTestDatabase,
  deleteTestKeys,
  memoryLogger,
  testConfig,
  testKeyPrefix,
  testQueueBackend,
  testRedisConnection,
  testRedisUrl,
} from "./support/test-env.js";

// On Redis the scheduler needs no database (a random prefix isolates each test); on PostgreSQL
// the queues live in the database, so each test gets a database of its own. Test schedules target invoice-totals.
const unusedDatabaseUrl = "postgresql://postgres@127.0.0.1:5432/unused";
const everyThreeSeconds = "*/3 * * * * *";

function testSchedule(id: string, cron = everyThreeSeconds): ScheduleDefinition {
  return { id, queue: "invoice-totals", cron, payload: { all: true }, overrideVariable: "SCHEDULE_TRANSACTION_RETRY" };
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe(`scheduler: one registration however many start (${testQueueBackend()})`, () => {
  let redis: RedisConnection;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(() => {
    redis = testRedisConnection();
  });

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    redis.disconnect();
  });

  /** A config and a queue store of the test's own: a fresh prefix on Redis, a fresh database on PostgreSQL; all gone after the file. */
  async function isolated(): Promise<{ config: Config; store: QueueStore }> {
    let config: Config;
    if (testQueueBackend() === "postgres") {
      const database = await createTestDatabase();
      cleanups.unshift(() => database.drop());
      config = testConfig(database.url);
    } else {
      config = testConfig(unusedDatabaseUrl);
      dropPrefixLater(config);
    }
    const store = createQueueStore({ ...queueStoreOptions(config), role: "worker", logger: memoryLogger("warn").logger });
    cleanups.push(() => store.close());
    return { config, store };
  }

  /** Job scheduler ids over every queue. */
  async function registeredIds(store: QueueStore): Promise<string[]> {
    const ids: string[] = [];
    for (const name of queueNames) {
      const queue = await store.queue(name);
      ids.push(...(await queue.getJobSchedulers()).map((item) => item.key));
      await queue.close();
    }
    return ids;
  }

  /** Leaves nothing of a test prefix in the shared Redis. */
  function dropPrefixLater(config: Config): void {
    cleanups.unshift(async () => {
      const store = createQueueStore({ ...queueStoreOptions(config), redisConnection: redis });
      for (const name of queueNames) {
        const queue = await store.queue(name);
        await queue.obliterate({ force: true });
        await queue.close();
      }
      await deleteTestKeys(redis, `${testKeyPrefix(redis, config)}:dbjobs:*`);
    });
  }

  async function queueFor(store: QueueStore): Promise<AnyQueue> {
    const queue = await store.queue("invoice-totals");
    cleanups.push(() => queue.close());
    return queue;
  }

  it("three schedulers started at once leave one job scheduler and never double-fire, across a take-over", async () => {
    const { config, store } = await isolated();
    const schedule = testSchedule("test-every-3s");
    const { logger } = memoryLogger("warn");
    const schedulers: RunningScheduler[] = [0, 1, 2].map(() => startScheduler({ config, logger, schedules: [schedule], leaseMs: 2000 }));
    cleanups.push(() => Promise.all(schedulers.map((scheduler) => scheduler.close())));
    await Promise.all(schedulers.map((scheduler) => scheduler.ready));

    const fires: { id: string; startedAt: number }[] = [];
    const worker = await store.worker(
      "invoice-totals",
      async (job) => {
        fires.push({ id: String(job.id), startedAt: Date.now() });
      },
      { concurrency: 4 },
    );
    cleanups.push(() => worker.close());

    expect(schedulers.filter((scheduler) => scheduler.isLeader())).toHaveLength(1);
    const queue = await queueFor(store);
    expect((await queue.getJobSchedulers()).map((scheduler) => scheduler.key)).toEqual(["test-every-3s"]);

    await waitFor(() => fires.length >= 3, 30_000, "three fires");
    // The holder stops; a standby must take over without re-creating the pending fire.
    const leader = schedulers.find((scheduler) => scheduler.isLeader()) as RunningScheduler;
    await leader.close();
    await waitFor(() => schedulers.some((scheduler) => scheduler !== leader && scheduler.isLeader()), 15_000, "a standby to take over");
    const firesAtTakeover = fires.length;
    await waitFor(() => fires.length >= firesAtTakeover + 3, 30_000, "three more fires after the take-over");
    await worker.close();

    expect((await queue.getJobSchedulers()).map((scheduler) => scheduler.key)).toEqual(["test-every-3s"]);
    expect(schedulers.filter((scheduler) => scheduler.isLeader())).toHaveLength(1);
    const fireTimes = fires.map((fire) => Number(fire.id.split(":").at(-1)));
    // One job per cron slot: a double fire would show as two jobs in one slot.
    expect(new Set(fireTimes).size).toBe(fires.length);
    expect(new Set(fireTimes.map((time) => Math.floor(time / 3000))).size).toBe(fires.length);
    for (const time of fireTimes) expect(time % 3000).toBe(0);
    for (const fire of fires) expect(fire.id.startsWith("repeat:test-every-3s:")).toBe(true);

    const health = await readScheduleHealth({ store, config });
    const entry = health.find((item) => item.id === "test-every-3s");
    expect(entry).toMatchObject({ queue: "invoice-totals", registered: true, declared: false, missedFires: 0 });
    expect(entry?.lastFireAt).toBe(Math.max(...fireTimes.filter((time) => time <= Date.now())));
    expect(entry?.nextFireAt).toBeGreaterThan(Date.now() - 3000);
  });

  it("registers every declared schedule and removes job schedulers that are no longer declared", async () => {
    const { config, store } = await isolated();
    const queue = await queueFor(store);
    await queue.upsertJobScheduler("retired-schedule", { pattern: "0 0 * * *", tz: "UTC" }, { name: "retired-schedule", data: { all: true } });

    const { logger } = memoryLogger("info");
    const schedules = [...declaredSchedules(config), testSchedule("test-hourly", "0 * * * *")];
    const scheduler = startScheduler({ config, logger, schedules, leaseMs: 2000 });
    cleanups.push(() => scheduler.close());
    await scheduler.ready;
    expect(scheduler.isLeader()).toBe(true);

    const expected = schedules.map((item) => item.id);
    const registered: string[] = [];
    for (const name of new Set(schedules.map((item) => item.queue))) {
      const other = await store.queue(name);
      registered.push(...(await other.getJobSchedulers()).map((item) => item.key));
      await other.close();
    }
    expect(registered.sort()).toEqual(expected.sort());
    expect(registered).not.toContain("retired-schedule");

    const health = await readScheduleHealth({ store, config });
    expect(health.find((entry) => entry.id === "retired-schedule")).toBeUndefined();
  });

  it("a bad cron override is reported naming its variable and nothing is registered for it", async () => {
    const { config, store } = await isolated();
    const { logger, lines } = memoryLogger("info");
    const scheduler = startScheduler({ config, logger, schedules: [testSchedule("test-bad", "not a cron")], leaseMs: 2000 });
    cleanups.push(() => scheduler.close());
    await scheduler.ready;
    expect(await (await queueFor(store)).getJobSchedulers()).toEqual([]);
    expect(lines().some((line) => line.msg === "schedule not registered" && line.schedule === "test-bad")).toBe(true);
  });

  it("a schedule whose new cron override is bad keeps the scheduler it had", async () => {
    const { config, store } = await isolated();
    const first = startScheduler({ config, logger: memoryLogger("warn").logger, schedules: [testSchedule("test-kept", "0 * * * *")], leaseMs: 2000 });
    await first.ready;
    await first.close();
    const { logger, lines } = memoryLogger("info");
    const second = startScheduler({ config, logger, schedules: [testSchedule("test-kept", "not a cron")], leaseMs: 2000 });
    cleanups.push(() => second.close());
    await second.ready;
    expect(lines().some((line) => line.msg === "schedule not registered" && line.schedule === "test-kept")).toBe(true);
    const kept = await (await queueFor(store)).getJobSchedulers();
    expect(kept.map((scheduler) => [scheduler.key, scheduler.pattern])).toEqual([["test-kept", "0 * * * *"]]);
  });

  it("counts missed fires when no worker takes the schedule's jobs", async () => {
    const { config, store } = await isolated();
    const { logger } = memoryLogger("warn");
    const scheduler = startScheduler({ config, logger, schedules: [testSchedule("test-unserved", "*/2 * * * * *")], leaseMs: 2000 });
    cleanups.push(() => scheduler.close());
    await scheduler.ready;
    // The first job waits for a worker that never comes, so BullMQ creates no later ones.
    await waitFor(
      async () => ((await readScheduleHealth({ store, config })).find((item) => item.id === "test-unserved")?.missedFires ?? 0) >= 2,
      30_000,
      "two missed fires",
    );
    const entry = (await readScheduleHealth({ store, config })).find((item) => item.id === "test-unserved");
    expect(entry?.lastFireAt).not.toBeNull();
    expect(entry?.registered).toBe(true);
  });

  it("dbjobs scheduler processes: one holds the lease, a standby takes over when it is killed, SIGTERM exits 0", async () => {
    const { config, store } = await isolated();
    const env = cliEnv(config.REDIS_CLUSTER_NODES ? config : { ...config, REDIS_URL: testRedisUrl() }, {
      SCHEDULER_LEASE_MS: "2000",
      QUEUE_BACKEND: config.QUEUE_BACKEND,
    });
    // On PostgreSQL the scheduler must not need Redis at all.
    if (config.QUEUE_BACKEND === "postgres") delete env.REDIS_URL;
    // The lease's token in Redis; on PostgreSQL the pid of the session holding the advisory lock.
    const lockHolder = () => schedulerLock({ store }).holder();
    const runs = [0, 1, 2].map(() => spawnCli(["scheduler"], env));
    cleanups.push(async () => {
      for (const run of runs) if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGKILL");
    });
    await Promise.all(runs.map((run) => run.waitForOutput(/holding the scheduler lease|standing by/, 60_000)));
    const holders = () => runs.filter((run) => /holding the scheduler lease/.test(run.stderr()));
    await waitFor(() => holders().length === 1, 10_000, "one holder");
    await sleep(2500);
    expect(holders()).toHaveLength(1);
    const leader = holders()[0] as (typeof runs)[number];
    const token = await lockHolder();
    expect(token).not.toBeNull();

    // Every declared schedule has exactly one job scheduler.
    const expected = declaredSchedules(config);
    await waitFor(async () => (await registeredIds(store)).length >= expected.length, 20_000, "the schedules to be registered");
    expect((await registeredIds(store)).sort()).toEqual(expected.map((item) => item.id).sort());

    leader.child.kill("SIGKILL");
    await leader.exited;
    await waitFor(
      () => runs.filter((run) => run !== leader && /holding the scheduler lease/.test(run.stderr())).length === 1,
      20_000,
      "a standby to take over",
    );
    expect(await lockHolder()).not.toBe(token);

    const survivors = runs.filter((run) => run !== leader);
    for (const run of survivors) run.child.kill("SIGTERM");
    const exits = await Promise.all(survivors.map((run) => run.exited));
    expect(exits.map((exit) => exit.code)).toEqual([0, 0]);
    // The holder released its lease on the way out.
    expect(await lockHolder()).toBeNull();
  }, 120_000);
});
