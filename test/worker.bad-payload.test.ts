import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { invoiceTotalsPayload } from "../src/jobs/invoice-totals/contract.js";
import { type Config, queueStoreOptions } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { PayloadValidationError } from "../src/lib/errors.js";
import { type AnyQueue, type AnyQueueEvents, createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { validatePayload } from "../src/queues/validate-payload.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { readSeries } from "./support/metric-series.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/** The message the producer would have given for `payload`. */
function producerMessage(payload: unknown): string {
  try {
    validatePayload("invoice-totals", invoiceTotalsPayload, payload);
  } catch (err) {
    if (err instanceof PayloadValidationError) return err.message;
  }
  throw new Error("expected the payload to be invalid");
}

describe("a bad payload that reaches a worker anyway", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let store: QueueStore;
  let queue: AnyQueue;
  let events: AnyQueueEvents;
  let worker: RunningWorker;
  const log = memoryLogger("info");

  beforeAll(async () => {
    db = testDatabase.db;
    config = testConfig(testDatabase.url);
    store = createQueueStore({ ...queueStoreOptions(config), role: "producer" });
    // A raw BullMQ queue: it bypasses the producer's validation, as another
    // language's client or an old producer version would.
    queue = await store.queue("invoice-totals");
    events = await store.queueEvents("invoice-totals");
    await events.waitUntilReady();
    worker = await startWorker("invoice-totals", { config, logger: log.logger, db, metricsFlushMs: 100 });
  });

  afterAll(async () => {
    await worker?.close();
    await events?.close();
    await queue?.obliterate({ force: true });
    await queue?.close();
    await store?.close();
  });

  it.each([
    { label: "invoiceIds: []", payload: { invoiceIds: [] }, field: "invoiceIds" },
    { label: "a non-uuid invoice id", payload: { invoiceIds: ["INV-1"] }, field: "invoiceIds.0" },
    { label: "two modes at once", payload: { all: true, changedSince: "2026-01-01T00:00:00Z" }, field: "invoiceIds" },
  ])("fails $label at once, without retries, with the producer's message naming the field", async ({ payload, field }) => {
    const job = await queue.add("invoice-totals", payload, { attempts: 5, backoff: { type: "fixed", delay: 10 } });
    await expect(waitForJob(job, events, 60_000)).rejects.toThrow(`${field}:`);

    const failed = await queue.getJob(job.id as string);
    expect(await failed?.getState()).toBe("failed");
    expect(failed?.attemptsMade).toBe(1);
    expect(failed?.failedReason).toBe(producerMessage(payload));
    expect(failed?.failedReason).toContain(`${field}:`);

    // The worker logs from its own "failed" event, which may come after the queue's event the test waited on.
    const line = await waitFor("the worker's failure line", async () => log.lines().find((entry) => entry.msg === "job failed" && entry.jobId === job.id));
    expect(line).toMatchObject({ queue: "invoice-totals", attemptsMade: 1 });
  });

  it("keeps running: a good job after the bad ones completes", async () => {
    const job = await queue.add("invoice-totals", { all: true });
    await expect(waitForJob(job, events, 60_000)).resolves.toMatchObject({ invoicesUpdated: 0, skippedVoided: 0 });
  });

  it("counts the failures and the completion for the dashboard's metrics", async () => {
    const q = 'queue="invoice-totals"';
    const metrics = await waitFor("the worker's metrics flush", async () => {
      const current = await readSeries(store.metrics());
      return current.get(`dbjobs_jobs_completed_total{${q}}`) === 1 ? current : undefined;
    });
    expect(metrics.get(`dbjobs_jobs_failed_total{${q}}`)).toBe(3);
    expect(metrics.get(`dbjobs_job_duration_seconds_count{${q}}`)).toBe(1);
    expect(metrics.get(`dbjobs_job_duration_seconds_bucket{le="+Inf",${q}}`)).toBe(1);
    expect(metrics.get(`dbjobs_job_duration_seconds_bucket{le="300",${q}}`)).toBe(1);
  });
});
