import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { Producer } from "../src/queues/producer.js";
import type { ScheduleHealth } from "../src/queues/schedule-health.js";
import { type RunningScheduler, startScheduler } from "../src/queues/scheduler.js";
import { type CliRun, cliEnv, runCli, spawnCli } from "./support/spawn-cli.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * Schedule control from the CLI: `schedules trigger` runs a schedule's job now
 * and leaves its next fire where it was; `schedules pause` makes the worker
 * skip the fires (completed without running), and `schedules` shows it paused
 * with no missed fires even while no worker takes them; `resume` brings the
 * real runs back.
 */
describe("schedule control: trigger, pause and resume", () => {
  const testDatabase = useTestDb();
  const everySecond = "transaction-retry-every-minute";
  let config: Config;
  let env: Record<string, string>;
  let scheduler: RunningScheduler;
  let producer: Producer;
  const workers: CliRun[] = [];

  beforeAll(async () => {
    // The transaction-retry schedule fires every second here, so pauses show within the test.
    config = testConfig(testDatabase.url, { SCHEDULE_TRANSACTION_RETRY: "* * * * * *" });
    env = cliEnv(config, { SCHEDULE_TRANSACTION_RETRY: "* * * * * *", DBJOBS_ACTOR: "tester" });
    producer = Producer.fromConfig(config);
    scheduler = startScheduler({ config, logger: memoryLogger("warn").logger, leaseMs: 2000 });
    await scheduler.ready;
  });
  afterAll(async () => {
    for (const worker of workers) if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
    await Promise.all(workers.map((worker) => worker.exited));
    await scheduler.close();
    await producer.close();
  });

  const startWorkerProcess = async () => {
    const worker = spawnCli(["worker", "transaction-retry"], env);
    workers.push(worker);
    await worker.waitForOutput(/worker started/, 90_000);
    return worker;
  };
  /** Return values of the schedule's fires that completed after `sinceMs`. */
  const firesSince = async (sinceMs: number) => {
    const jobs = await (await producer.queue("transaction-retry")).getJobs(["completed"], 0, -1);
    return jobs
      .filter((job) => String(job.id).startsWith(`repeat:${everySecond}:`) && (job.finishedOn ?? 0) > sinceMs)
      .map((job) => job.returnvalue as Record<string, unknown>);
  };
  const health = async () => {
    const { stdout } = await runCli(["schedules", "--json"], env);
    return (JSON.parse(stdout) as { schedules: ScheduleHealth[] }).schedules.find((item) => item.id === everySecond);
  };

  it("trigger enqueues one run now and leaves the next fire where it was", { timeout: 60_000 }, async () => {
    const archiving = await producer.queue("archiving");
    const nextBefore = (await archiving.getJobScheduler("archiving-monthly"))?.next;
    expect(nextBefore).toBeGreaterThan(Date.now());
    const { code, stdout } = await runCli(["schedules", "trigger", "archiving-monthly", "--json"], env);
    expect(code).toBe(0);
    const { jobId, queue } = JSON.parse(stdout) as { jobId: string; queue: string };
    expect(queue).toBe("archiving");
    const job = await archiving.getJob(jobId);
    expect(await job?.getState()).toBe("waiting");
    expect(job?.data).toEqual({});
    expect((await archiving.getJobScheduler("archiving-monthly"))?.next).toBe(nextBefore);

    const unknown = await runCli(["schedules", "trigger", "no-such-schedule"], env);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/Unknown schedule "no-such-schedule"\. Declared schedules: .*transaction-retry-every-minute/);
  });

  it("a paused schedule's fires are skipped, it shows paused with no misses, and resume brings runs back", { timeout: 180_000 }, async () => {
    const worker = await startWorkerProcess();
    const start = Date.now();
    await waitFor("a fire to run", async () => (await firesSince(start)).some((value) => "settled" in value), 30_000);

    expect((await runCli(["schedules", "pause", everySecond], env)).code).toBe(0);
    const paused = Date.now();
    // Fires already created before the pause may still run; wait for ones that were skipped.
    await waitFor(
      "a fire to be skipped",
      async () => (await firesSince(paused)).some((value) => value.skipped === `schedule ${everySecond} is paused`),
      30_000,
    );
    await worker.waitForOutput(/schedule paused: fire skipped/, 10_000);
    const skippedFrom = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect((await firesSince(skippedFrom)).every((value) => value.skipped !== undefined)).toBe(true);

    // No worker for a few seconds: the fires are not taken, yet a paused schedule misses nothing.
    worker.child.kill("SIGTERM");
    await worker.exited;
    await new Promise((resolve) => setTimeout(resolve, 8000));
    const whilePaused = await health();
    expect(whilePaused).toMatchObject({ paused: true, missedFires: 0 });

    expect((await runCli(["schedules", "resume", everySecond], env)).code).toBe(0);
    expect(await health()).toMatchObject({ paused: false });
    await startWorkerProcess();
    const resumed = Date.now();
    await waitFor("a fire to run again", async () => (await firesSince(resumed)).some((value) => "settled" in value), 30_000);
  });
});
