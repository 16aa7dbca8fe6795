import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, queueStoreOptions } from "../src/lib/config.js";
import { createQueueStore } from "../src/lib/queue-store.js";
import { Producer } from "../src/queues/producer.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig } from "./support/test-env.js";

/**
 * The operator verbs, run as the real CLI in child processes against real
 * Redis. The failures come from a BullMQ worker in this file whose handler
 * throws errors that differ only in ids and numbers, as production errors do.
 */
// Each CLI run is a tsx child process (several seconds on a loaded machine); tests run a few each.
describe("dbjobs operator verbs", { timeout: 240_000 }, () => {
  let database: TestDatabase;
  let config: Config;
  let env: Record<string, string>;
  let producer: Producer;
  const rangeErrorIds: string[] = [randomUUID(), randomUUID(), randomUUID()];
  const refusedIds: string[] = [randomUUID(), randomUUID()];
  const okIds = [randomUUID(), randomUUID()];
  const jobIdByInvoice = new Map<string, string>();

  const cli = async (...args: string[]) => runCli(args, env, 90_000);
  const cliJson = async (...args: string[]) => {
    const result = await cli(...args, "--json");
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    return JSON.parse(result.stdout);
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
    // "error": a slow-query warning on a loaded machine is not the verb's output.
    env = cliEnv(config, { LOG_LEVEL: "error" });
    producer = Producer.fromConfig(config);

    const settled = new Set<string>();
    // A bare BullMQ worker on the backend under test, so the jobs fail with the errors this file groups.
    // Its own store with role "worker": a Redis worker's connection must wait through outages.
    const workerStore = createQueueStore({ ...queueStoreOptions(config), role: "worker" });
    const worker = await workerStore.worker(
      "invoice-totals",
      async (job: Job) => {
        const invoiceId = job.data.invoiceIds[0] as string;
        await job.updateProgress(50);
        await job.log(`looking at invoice ${invoiceId}`);
        if (rangeErrorIds.includes(invoiceId)) throw new RangeError(`invoice ${invoiceId} has ${Math.floor(Math.random() * 90) + 10} lines over the limit`);
        if (refusedIds.includes(invoiceId)) throw new Error(`connection to "db-${Math.floor(Math.random() * 9)}" refused`);
        return { invoicesUpdated: 1 };
      },
      { concurrency: 4 },
    );
    worker.on("completed", (job) => settled.add(String(job.id)));
    worker.on("failed", (job) => settled.add(String(job?.id)));
    for (const invoiceId of [...rangeErrorIds, ...refusedIds, ...okIds]) {
      const job = await producer.enqueue("invoice-totals", { invoiceIds: [invoiceId] }, { attempts: 1 });
      jobIdByInvoice.set(invoiceId, String(job.id));
    }
    const deadline = Date.now() + 60_000;
    while (settled.size < 7 && Date.now() < deadline) await sleep(100);
    await worker.close();
    await workerStore.close();
    expect(settled.size).toBe(7);
  });

  afterAll(async () => {
    await (await producer?.queue("invoice-totals"))?.obliterate({ force: true });
    await producer?.close();
    await database?.drop();
  });

  it("status --json: counts, rates and workers per queue", async () => {
    const status = await cliJson("status");
    const invoice = status.queues.find((queue: { queue: string }) => queue.queue === "invoice-totals");
    expect(invoice).toMatchObject({ failed: 5, completed: 2, waiting: 0, active: 0, paused: false, workers: 0, jobsPerMinute: 2, failedPerMinute: 5 });
    expect(status.queues).toHaveLength(7);
    expect(status.cache).toHaveProperty("total");
  });

  it("jobs lists a state with a limit, and a bad state says which ones exist", async () => {
    const failed = await cliJson("jobs", "invoice-totals", "--state", "failed");
    expect(failed.jobs).toHaveLength(5);
    expect(new Set(failed.jobs.map((job: { state: string }) => job.state))).toEqual(new Set(["failed"]));
    const limited = await cliJson("jobs", "invoice-totals", "--limit", "3");
    expect(limited.jobs).toHaveLength(3);

    const bad = await cli("jobs", "invoice-totals", "--state", "broken");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('Unknown state "broken". Use one of: waiting, active, delayed');
  });

  it("job shows payload, attempts, progress, the error with its stack, and the job's logs", async () => {
    const invoiceId = rangeErrorIds[0] as string;
    const id = jobIdByInvoice.get(invoiceId) as string;
    const job = await cliJson("job", "invoice-totals", id);
    expect(job).toMatchObject({
      id,
      state: "failed",
      attemptsMade: 1,
      maxAttempts: 1,
      progress: 50,
      payload: { invoiceIds: [invoiceId] },
      errorClass: "RangeError",
    });
    expect(job.failedReason).toContain(`invoice ${invoiceId} has`);
    expect(job.stacktrace.at(-1)).toMatch(/^RangeError: invoice .* over the limit\n\s+at /);
    expect(job.logs).toEqual([`looking at invoice ${invoiceId}`]);

    const text = await cli("job", "invoice-totals", id);
    expect(text.stdout).toContain("RangeError");
    expect(text.stdout).toContain(`looking at invoice ${invoiceId}`);

    const missing = await cli("job", "invoice-totals", "no-such-job");
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('No job "no-such-job" in queue "invoice-totals"');
    const unknownQueue = await cli("job", "invoice-total", "1");
    expect(unknownQueue.code).not.toBe(0);
    expect(unknownQueue.stderr).toContain('Unknown queue "invoice-total". Known queues:');
  });

  it("failed --group groups failures by error class and normalised message, and retry --fingerprint retries one group", async () => {
    const grouped = await cliJson("failed", "invoice-totals", "--group");
    expect(grouped.failedJobs).toBe(5);
    expect(grouped.groups.map((group: { count: number; errorClass: string }) => [group.count, group.errorClass])).toEqual([
      [3, "RangeError"],
      [2, "Error"],
    ]);
    expect(grouped.groups[0].normalisedMessage).toBe("invoice <uuid> has <n> lines over the limit");
    expect(grouped.groups[1].normalisedMessage).toBe("connection to <value> refused");

    const bad = await cli("retry", "invoice-totals", "--fingerprint", "000000000000");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("dbjobs failed invoice-totals --group");

    const retried = await cliJson("retry", "invoice-totals", "--fingerprint", grouped.groups[0].fingerprint);
    expect(retried.retried).toBe(3);
    expect(new Set(retried.jobIds)).toEqual(new Set(rangeErrorIds.map((id) => jobIdByInvoice.get(id))));
    const status = await cliJson("status");
    expect(status.queues.find((queue: { queue: string }) => queue.queue === "invoice-totals")).toMatchObject({ failed: 2, waiting: 3 });
  });

  it("retry by id takes only failed jobs; retry needs exactly one target; retry --all takes the rest", async () => {
    const completedId = jobIdByInvoice.get(okIds[0] as string) as string;
    const notFailed = await cli("retry", "invoice-totals", completedId);
    expect(notFailed.code).not.toBe(0);
    expect(notFailed.stderr).toContain(`Job "${completedId}" in queue "invoice-totals" is completed, not failed`);
    const nothing = await cli("retry", "invoice-totals");
    expect(nothing.code).not.toBe(0);
    expect(nothing.stderr).toContain("Say what to retry");

    const oneId = jobIdByInvoice.get(refusedIds[0] as string) as string;
    expect((await cliJson("retry", "invoice-totals", oneId)).jobIds).toEqual([oneId]);
    expect((await cliJson("retry", "invoice-totals", "--all")).jobIds).toEqual([jobIdByInvoice.get(refusedIds[1] as string)]);
    const status = await cliJson("status");
    expect(status.queues.find((queue: { queue: string }) => queue.queue === "invoice-totals")).toMatchObject({ failed: 0, waiting: 5 });
    expect(status.queues.find((queue: { queue: string }) => queue.queue === "invoice-totals").oldestWaitingAgeMs).toBeGreaterThan(0);
  });

  it("pause and resume the queue for every worker", async () => {
    expect(await cliJson("pause", "invoice-totals")).toEqual({ queue: "invoice-totals", paused: true });
    expect((await cliJson("status")).queues.find((queue: { queue: string }) => queue.queue === "invoice-totals").paused).toBe(true);
    expect(await cliJson("resume", "invoice-totals")).toEqual({ queue: "invoice-totals", paused: false });
  });

  it("clean removes jobs of one state older than a duration, and refuses vague requests", async () => {
    const young = await cliJson("clean", "invoice-totals", "--state", "completed", "--older-than", "1h");
    expect(young.removed).toBe(0);
    const all = await cliJson("clean", "invoice-totals", "--state", "completed", "--older-than", "0s");
    expect(all.removed).toBe(2);
    expect((await cliJson("jobs", "invoice-totals", "--state", "completed")).jobs).toEqual([]);

    const badDuration = await cli("clean", "invoice-totals", "--state", "completed", "--older-than", "soon");
    expect(badDuration.code).not.toBe(0);
    expect(badDuration.stderr).toContain('--older-than "soon" is not a duration');
    const noState = await cli("clean", "invoice-totals", "--older-than", "1h");
    expect(noState.code).not.toBe(0);
    expect(noState.stderr).toContain("--state completed --older-than 7d");
    const activeState = await cli("clean", "invoice-totals", "--state", "active", "--older-than", "1h");
    expect(activeState.code).not.toBe(0);
    expect(activeState.stderr).toContain('Unknown state "active"');
  });

  it("schedules lists every declared schedule, unregistered while no scheduler runs", async () => {
    const { schedules } = await cliJson("schedules");
    expect(schedules.map((item: { id: string }) => item.id).sort()).toEqual(
      [
        "analyze-nightly",
        "archiving-monthly",
        "audit-log-partitions-daily",
        "cache-prefetch-every-5-minutes",
        "job-history-partitions-daily",
        "partition-maintenance-daily",
        "reindex-weekly",
        "transaction-retry-every-minute",
      ].sort(),
    );
    for (const item of schedules) expect(item).toMatchObject({ declared: true, registered: false, lastFireAt: null, nextFireAt: null, missedFires: 0 });
    const text = await cli("schedules");
    expect(text.stdout).toContain("not registered: is `dbjobs scheduler` running");
  });

  it("a read verb against an unreachable queue store fails fast and says what to do", async () => {
    const onRedis = config.QUEUE_BACKEND === "redis";
    const unreachable: Record<string, string> = onRedis
      ? { REDIS_URL: "redis://127.0.0.1:9" }
      : { QUEUE_DATABASE_URL: "postgresql://postgres@127.0.0.1:9/dbjobs" };
    const result = await runCli(["status", "--json"], { ...env, ...unreachable }, 30_000);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      onRedis ? "Cannot reach Redis at redis://127.0.0.1:9" : "Cannot reach PostgreSQL at postgresql://postgres@127.0.0.1:9/dbjobs",
    );
    expect(result.stderr).toContain(onRedis ? "Start Redis or set REDIS_URL" : "set QUEUE_DATABASE_URL");
  });
});
