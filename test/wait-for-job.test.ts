import { UnrecoverableError } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClosingWorker } from "../src/lib/closing-worker.js";
import { queueStoreOptions } from "../src/lib/config.js";
import { type AnyQueue, type AnyQueueEvents, createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import { JobWaitError, waitForJob } from "../src/queues/wait-for-job.js";
import { testConfig, useTestDb } from "./support/test-env.js";

/**
 * `dbjobs enqueue --wait` must end when the job does even if the queue's
 * event for it never arrives (BullMQ's PostgreSQL backend can miss one when
 * two jobs finish at once). Here the waiter listens to another queue's
 * events, so only its look at the job itself can see the job finish.
 */
describe("waitForJob when the job's events never arrive", () => {
  const testDatabase = useTestDb();
  let store: QueueStore;
  let queue: AnyQueue;
  let idle: AnyQueue;
  let worker: ClosingWorker;
  let deaf: AnyQueueEvents;

  beforeAll(async () => {
    store = createQueueStore({ ...queueStoreOptions(testConfig(testDatabase.url)), role: "worker" });
    queue = await store.queue("wait-for-job");
    idle = await store.queue("wait-for-job-idle");
    deaf = await store.queueEvents("wait-for-job-elsewhere");
    await deaf.waitUntilReady();
    worker = await store.worker(
      "wait-for-job",
      async (job) => {
        if (job.data.fail) throw new UnrecoverableError("failed on purpose");
        return { doubled: job.data.n * 2 };
      },
      { concurrency: 1 },
    );
  });

  afterAll(async () => {
    await worker?.close();
    await deaf?.close();
    for (const q of [queue, idle]) {
      await q?.obliterate({ force: true });
      await q?.close();
    }
    await store?.close();
  });

  it("resolves with the result of a job that completed", async () => {
    const job = await queue.add("double", { n: 21 });
    await expect(waitForJob(job, deaf, 20_000)).resolves.toEqual({ doubled: 42 });
  });

  it("rejects with the failure reason of a job that failed", async () => {
    const job = await queue.add("double", { n: 1, fail: true });
    await expect(waitForJob(job, deaf, 20_000)).rejects.toThrow("failed on purpose");
  });

  it("rejects with a timeout naming the job when it does not finish in time", async () => {
    const job = await idle.add("never-taken", {});
    const waited = waitForJob(job, deaf, 1500);
    await expect(waited).rejects.toThrow(`job ${job.id} did not finish within 1500 ms`);
    await expect(waited).rejects.toMatchObject({ reason: "timeout" });
    await expect(waited).rejects.toBeInstanceOf(JobWaitError);
    expect(await job.getState()).toBe("waiting");
  });

  it("rejects, pointing to the history, once the job is seen removed at two looks", async () => {
    const job = await idle.add("removed", {});
    await job.remove();
    const waited = waitForJob(job, deaf, 20_000);
    await expect(waited).rejects.toThrow(`job ${job.id} is no longer in its queue`);
    await expect(waited).rejects.toMatchObject({ reason: "gone" });
  });
});
