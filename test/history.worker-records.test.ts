import { UnrecoverableError } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseHistoryQuery } from "../src/history/history-query.js";
import { searchHistory } from "../src/history/search-history.js";
import { queueStoreOptions } from "../src/lib/config.js";
import { fingerprintFailure } from "../src/lib/error-fingerprint.js";
import { type AnyQueue, createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import { defineContract } from "../src/queues/contract.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * The worker runtime records every finished job in dbjobs.job_history, with
 * the queue's personal fields redacted, and only final failures; the search
 * finds the rows by payload field, fingerprint, error text and id, newest
 * first, a page at a time.
 */
const QUEUE = "history-test";
const contract = defineContract<{ sent: number }>()({
  name: QUEUE,
  payload: z.object({ campaignId: z.string(), body: z.string(), patientIds: z.array(z.string()), fail: z.enum(["no", "always", "unrecoverable"]) }).strict(),
  history: { redact: ["body", "patientIds"] },
  worker: { concurrency: 4 },
  jobOptions: { attempts: 2, backoff: { type: "fixed", delay: 10 } },
});

describe("job history written by the worker runtime", () => {
  const testDatabase = useTestDb();
  let store: QueueStore;
  let queue: AnyQueue;
  let running: RunningWorker;

  beforeAll(async () => {
    const config = testConfig(testDatabase.url, { HISTORY_FLUSH_MS: "50", HISTORY_BATCH_SIZE: "3" });
    store = createQueueStore({ ...queueStoreOptions(config), role: "producer", poolSize: 2, applicationName: "history-test" });
    queue = await store.queue(QUEUE, { defaultJobOptions: contract.jobOptions });
    running = await startWorker(QUEUE, {
      config,
      logger: memoryLogger("warn").logger,
      db: testDatabase.db,
      job: {
        contract,
        handler: async (raw) => {
          const payload = raw as z.output<typeof contract.payload>;
          if (payload.fail === "always") throw new Error(`campaign ${payload.campaignId} refused by provider (code 4021)`);
          if (payload.fail === "unrecoverable") throw new UnrecoverableError("template missing");
          return { sent: payload.patientIds.length };
        },
      },
    });
  });
  afterAll(async () => {
    await running?.close();
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
    await store?.close();
  });

  const historyRows = async (jobId: string) =>
    (await testDatabase.db.pool.query(`SELECT * FROM "dbjobs"."job_history_jobs" WHERE "job_id" = $1`, [jobId])).rows as Record<string, unknown>[];

  it("records a completed job with its redacted payload, result, attempts and times", async () => {
    const job = await queue.add(QUEUE, { campaignId: "spring-2026", body: "Your results for diabetes are ready", patientIds: ["p1", "p2"], fail: "no" });
    const [row] = await waitFor("the history row", async () => {
      const rows = await historyRows(String(job.id));
      return rows.length ? rows : undefined;
    });
    expect(row).toMatchObject({ queue: QUEUE, name: QUEUE, state: "completed", attempts: 1, result: { sent: 2 }, error_fingerprint: null });
    expect(row?.payload).toEqual({ campaignId: "spring-2026", body: "[redacted]", patientIds: "[redacted]", fail: "no" });
    expect(JSON.stringify(row)).not.toContain("diabetes");
    // The times are BullMQ's own (on the PostgreSQL backend some come from the database's clock).
    const finished = await queue.getJob(String(job.id));
    expect((row?.enqueued_at as Date | undefined)?.getTime()).toBe(finished?.timestamp);
    expect((row?.started_at as Date | undefined)?.getTime()).toBe(finished?.processedOn);
    expect((row?.finished_at as Date | undefined)?.getTime()).toBe(finished?.finishedOn);
  });

  it("records a failure once, after its last attempt, with the fingerprint `dbjobs failed --group` shows", async () => {
    const job = await queue.add(QUEUE, { campaignId: "c-fail", body: "b", patientIds: [], fail: "always" });
    const [row] = await waitFor("the failed job's history row", async () => {
      const rows = await historyRows(String(job.id));
      return rows.length ? rows : undefined;
    });
    // Let any further flush land: a row per attempt would show up now.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await historyRows(String(job.id))).toHaveLength(1);
    const failed = await queue.getJob(String(job.id));
    expect(await failed?.getState()).toBe("failed");
    expect(row).toMatchObject({ state: "failed", attempts: 2, error_class: "Error", error_message: "campaign c-fail refused by provider (code 4021)" });
    expect(row?.error_fingerprint).toBe(fingerprintFailure(failed?.failedReason, failed?.stacktrace).fingerprint);
  });

  it("records an unrecoverable failure after its first attempt", async () => {
    const job = await queue.add(QUEUE, { campaignId: "c-unrec", body: "b", patientIds: [], fail: "unrecoverable" });
    const [row] = await waitFor("the history row", async () => {
      const rows = await historyRows(String(job.id));
      return rows.length ? rows : undefined;
    });
    expect(row).toMatchObject({ state: "failed", attempts: 1, error_class: "UnrecoverableError", error_message: "template missing" });
  });

  it("searches by payload field, fingerprint, error text, id and state, newest first, page by page", async () => {
    const added = [];
    for (let index = 0; index < 5; index++) {
      added.push(await queue.add(QUEUE, { campaignId: "paged", body: "b", patientIds: [`patient-${index}`], fail: "no" }));
    }
    const pool = testDatabase.db.pool;
    await waitFor(
      "five paged rows",
      async () => (await searchHistory(pool, parseHistoryQuery({ fields: ["campaignId=paged"], limit: 100 }))).entries.length === 5,
    );

    const first = await searchHistory(pool, parseHistoryQuery({ fields: ["campaignId=paged"], limit: 2 }));
    expect(first.entries).toHaveLength(2);
    expect(first.nextCursor).toBeDefined();
    const second = await searchHistory(pool, parseHistoryQuery({ fields: ["campaignId=paged"], limit: 2, cursor: first.nextCursor }));
    const third = await searchHistory(pool, parseHistoryQuery({ fields: ["campaignId=paged"], limit: 2, cursor: second.nextCursor }));
    expect(third.nextCursor).toBeUndefined();
    const ids = [...first.entries, ...second.entries, ...third.entries].map((entry) => entry.jobId);
    expect(new Set(ids)).toEqual(new Set(added.map((job) => String(job.id))));
    const times = [...first.entries, ...second.entries, ...third.entries].map((entry) => entry.finishedAt.getTime());
    expect(times).toEqual([...times].sort((a, b) => b - a));

    // A redacted field is not searchable: the values were never stored.
    expect((await searchHistory(pool, parseHistoryQuery({ fields: ["patientIds=patient-1"] }))).entries).toEqual([]);

    const failed = await searchHistory(pool, { fields: [], state: "failed", limit: 10 });
    expect(failed.entries.map((entry) => entry.payload)).toEqual(
      expect.arrayContaining([expect.objectContaining({ campaignId: "c-fail" }), expect.objectContaining({ campaignId: "c-unrec" })]),
    );
    const fingerprint = failed.entries.find((entry) => entry.errorMessage?.includes("refused"))?.errorFingerprint as string;
    const byFingerprint = await searchHistory(pool, parseHistoryQuery({ fingerprint }));
    expect(byFingerprint.entries.map((entry) => entry.errorMessage)).toEqual(["campaign c-fail refused by provider (code 4021)"]);
    const byText = await searchHistory(pool, parseHistoryQuery({ error: "REFUSED BY" }));
    expect(byText.entries).toHaveLength(1);
    const byId = await searchHistory(pool, parseHistoryQuery({ id: String(added[2]?.id) }));
    expect(byId.entries.map((entry) => entry.payload)).toEqual([{ campaignId: "paged", body: "[redacted]", patientIds: "[redacted]", fail: "no" }]);
    const future = await searchHistory(pool, parseHistoryQuery({ since: new Date(Date.now() + 3_600_000).toISOString() }));
    expect(future.entries).toEqual([]);
  });
});
