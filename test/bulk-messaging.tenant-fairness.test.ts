import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { lockNames } from "../src/lib/advisory-locks.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { cancelJob } from "../src/queues/cancel-job.js";
import type { Producer } from "../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { type FakeSmsRequest, type FakeSmsServer, smsProviderEnv, startFakeSmsServer } from "./support/fake-sms-server.js";
import { openQueueClient, type QueueClient } from "./support/queue-client.js";
import { memoryLogger, testConfig, testQueueBackend, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * Issue 20 item 4: fair shares per clinic. Campaigns carry a `tenantId`;
 * a tenant's campaigns hold at most MESSAGING_TENANT_CONCURRENCY slots over
 * all workers, and every MESSAGING_FAIR_SLICE_BATCHES batches a campaign
 * gives its worker slot to a waiting job. On a real worker, the fake SMS API
 * noting when each message arrives, on both queue backends.
 */
const batchSize = 50;
const sliceBatches = 2;

/** Each campaign's body starts with its campaign id, so the fake API's log tells them apart. */
const campaignOf = (request: FakeSmsRequest) => request.body.split(" ")[0] as string;

async function insertPatients(db: Db, count: number, tag: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ id: string }>(
    `INSERT INTO "patients" ("firstName", "lastName", "phone")
     SELECT 'Pat', 'L' || g, '+1555${tag}' || lpad(g::text, 6, '0') FROM generate_series(1, $1::int) g RETURNING "id"::text`,
    [count],
  );
  return rows.map((row) => row.id);
}

describe(`fair shares per tenant in bulk-messaging (${testQueueBackend()} backend)`, () => {
  const testDatabase = useTestDb();
  let db: Db;
  let sms: FakeSmsServer;
  let client: QueueClient;
  let producer: Producer;
  let worker: RunningWorker | undefined;
  let prefix: string;

  // One queue prefix for the producer and every worker of the file.
  const configWith = (settings: Record<string, string>): Config =>
    testConfig(testDatabase.url, smsProviderEnv(sms, { QUEUE_PREFIX: prefix, MESSAGING_FAIR_SLICE_BATCHES: String(sliceBatches), ...settings }));

  /** A campaign of `tenantId` to `recipients`: ids in the payload, or a staged list's id. */
  const enqueue = (campaignId: string, tenantId: string, recipients: string[] | { recipientListId: string }) =>
    producer.enqueue("bulk-messaging", {
      campaignId,
      tenantId,
      channel: "sms",
      body: `${campaignId} {{lastName}}`,
      ...(Array.isArray(recipients) ? { patientIds: recipients } : recipients),
      batchSize,
      sendConcurrency: 8,
    });

  beforeAll(async () => {
    db = testDatabase.db;
    sms = await startFakeSmsServer();
    prefix = testConfig(testDatabase.url).QUEUE_PREFIX;
    // Slow enough that a campaign's sending takes measurable time.
    sms.respond = () => ({ kind: "accept", delayMs: 4 });
    client = await openQueueClient("bulk-messaging", configWith({}));
    producer = client.producer;
  });
  afterEach(async () => {
    await worker?.close();
    worker = undefined;
  });
  afterAll(async () => {
    await client?.close();
    await sms?.close();
  });

  it("lets a small campaign of clinic B finish while clinic A's big ones are far from done", { timeout: 60_000 }, async () => {
    const bigIds = await insertPatients(db, 2000, "10");
    const smallIds = await insertPatients(db, 4 * batchSize, "20");
    // One worker slot: every turn B gets, one of A's campaigns must give up.
    const memory = memoryLogger("info");
    worker = await startWorker("bulk-messaging", { config: configWith({}), logger: memory.logger, concurrency: 1 });
    // One of A's campaigns from a staged list: a resumed run starts after the list's last member sent.
    const staged = await producer.stageRecipients(bigIds);
    const bigJobs = [await enqueue("a-first", "clinic-a", bigIds), await enqueue("a-second", "clinic-a", { recipientListId: staged.id })];
    await waitFor("clinic A to be sending", async () => sms.requests.length >= 3 * batchSize, 30_000);

    const smallEnqueuedAt = Date.now();
    const small = await enqueue("b-reminders", "clinic-b", smallIds);
    const smallResult = await waitForJob(small, client.events, 40_000);
    const smallFinishedAt = Date.now();
    expect(smallResult).toEqual({ processed: smallIds.length, total: smallIds.length, sent: smallIds.length, failed: 0, skipped: 0 });

    const bigTotal = 2 * bigIds.length;
    const bigSentBy = (time: number) => sms.requests.filter((request) => campaignOf(request).startsWith("a-") && request.receivedAtMs <= time).length;
    const whileSmallRan = bigSentBy(smallFinishedAt) - bigSentBy(smallEnqueuedAt);
    const figures = { bigTotal, bigSentWhenSmallDone: bigSentBy(smallFinishedAt), whileSmallRan, smallMs: smallFinishedAt - smallEnqueuedAt };
    // Far from done: without turns B would wait for all of A's messages.
    expect(figures.bigSentWhenSmallDone, JSON.stringify(figures)).toBeLessThan(bigTotal / 2);
    // A few batches: the slice in flight, then at most a slice per A campaign for each of B's two turns.
    expect(whileSmallRan, JSON.stringify(figures)).toBeLessThanOrEqual((1 + 2 * 2) * sliceBatches * batchSize);

    // A's campaigns still complete, every message sent exactly once, with counts right across their turns.
    for (const job of bigJobs) {
      expect(await waitForJob(job, client.events, 60_000)).toEqual({ processed: 2000, total: 2000, sent: 2000, failed: 0, skipped: 0 });
    }
    // Each of A's runs after the first resumed where the one before stopped, never from the start.
    for (const campaignId of ["a-first", "a-second"]) {
      const resumedAt = memory
        .lines()
        .filter((line) => line.msg === "campaign resumed" && line.campaignId === campaignId)
        .map((line) => line.resumeAt as number);
      expect(resumedAt.length, campaignId).toBeGreaterThan(1);
      expect(resumedAt[0], campaignId).toBeGreaterThan(0);
      expect(resumedAt, campaignId).toEqual([...resumedAt].sort((a, b) => a - b));
      expect(new Set(resumedAt).size, campaignId).toBe(resumedAt.length);
    }
    expect(sms.replays).toBe(0);
    const keys = sms.requests.map((request) => request.idempotencyKey);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toHaveLength(bigTotal + smallIds.length);
    const { rows } = await db.pool.query<{ campaignId: string; sent: number }>(
      `SELECT "campaignId", count(*)::int AS "sent" FROM "messaging_messages" WHERE "status" = 'sent' GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual([
      { campaignId: "a-first", sent: 2000 },
      { campaignId: "a-second", sent: 2000 },
      { campaignId: "b-reminders", sent: smallIds.length },
    ]);
  });

  /** How often the fake API's log switches from one of `campaigns` to another: low when they took turns, high when they sent at once. */
  const switchesBetween = (campaigns: string[]) => {
    const order = sms.requests.filter((request) => campaigns.includes(campaignOf(request))).map(campaignOf);
    return order.filter((campaign, index) => index > 0 && campaign !== order[index - 1]).length;
  };

  it("holds a tenant to MESSAGING_TENANT_CONCURRENCY over every worker, postponing its other campaigns without failing them", { timeout: 60_000 }, async () => {
    const ids = await insertPatients(db, 600, "30");
    // Two workers, a slot each: without the tenant's limit the two campaigns would send at once.
    const memory = memoryLogger("debug");
    const config = configWith({ MESSAGING_TENANT_CONCURRENCY: "1" });
    worker = await startWorker("bulk-messaging", { config, logger: memory.logger, concurrency: 1 });
    const second = await startWorker("bulk-messaging", { config, logger: memory.logger, concurrency: 1 });
    try {
      const jobs = [await enqueue("c-first", "clinic-c", ids), await enqueue("c-second", "clinic-c", ids)];
      for (const job of jobs) {
        expect(await waitForJob(job, client.events, 50_000)).toEqual({ processed: 600, total: 600, sent: 600, failed: 0, skipped: 0 });
      }
      const lines = memory.lines();
      const postponed = lines.filter((line) => line.msg === "every slot of the tenant is taken; postponed");
      const turnsGiven = lines.filter((line) => line.msg === "campaign gave its turn to a waiting job");
      expect(postponed.length).toBeGreaterThan(0);
      // One campaign sends at a time: the log switches campaigns only where one gave up its turn, or finished.
      expect(switchesBetween(["c-first", "c-second"])).toBeLessThanOrEqual(turnsGiven.length + 1);

      // A postponed run spends no attempt and is no failure: each job ran more often than the one attempt that completed it.
      const queue = await producer.queue("bulk-messaging");
      const stored = await Promise.all(jobs.map((job) => queue.getJob(String(job.id))));
      for (const job of stored) {
        expect(await job?.getState()).toBe("completed");
        expect(job?.attemptsMade).toBe(1);
      }
      expect(stored.reduce((runs, job) => runs + (job?.attemptsStarted ?? 0), 0)).toBeGreaterThan(2);
      expect(lines.filter((line) => line.msg === "job failed")).toEqual([]);
    } finally {
      await second.close();
      await worker.close();
      worker = undefined;
    }
    // Closed workers have written their history: each job completed once, nothing failed.
    const { rows } = await db.pool.query<{ state: string; jobs: number }>(
      `SELECT "state", count(*)::int AS "jobs" FROM "dbjobs"."job_history_jobs" WHERE "queue" = 'bulk-messaging' AND "payload"->>'campaignId' LIKE 'c-%' GROUP BY 1`,
    );
    expect(rows).toEqual([{ state: "completed", jobs: 2 }]);
  });

  it("lets a tenant named in MESSAGING_TENANT_LIMITS run that many campaigns at once", { timeout: 60_000 }, async () => {
    const ids = await insertPatients(db, 600, "40");
    const config = configWith({ MESSAGING_TENANT_CONCURRENCY: "1", MESSAGING_TENANT_LIMITS: "clinic-x=1,clinic-d=2" });
    worker = await startWorker("bulk-messaging", { config, logger: memoryLogger("warn").logger, concurrency: 1 });
    const second = await startWorker("bulk-messaging", { config, logger: memoryLogger("warn").logger, concurrency: 1 });
    try {
      const jobs = [await enqueue("d-first", "clinic-d", ids), await enqueue("d-second", "clinic-d", ids)];
      for (const job of jobs) {
        expect(await waitForJob(job, client.events, 50_000)).toEqual({ processed: 600, total: 600, sent: 600, failed: 0, skipped: 0 });
      }
    } finally {
      await second.close();
    }
    // Both sent at once: their messages interleave all along.
    expect(switchesBetween(["d-first", "d-second"])).toBeGreaterThan(20);
  });

  it("keeps a campaign postponed while another process holds its tenant's slot, and a cancel removes it", { timeout: 30_000 }, async () => {
    const ids = await insertPatients(db, 50, "50");
    // The slot held by a session of another process, as by a worker elsewhere (a session: never through PgBouncer).
    const holder = await (db.directPool ?? db.pool).connect();
    try {
      await holder.query("SELECT pg_advisory_lock(hashtextextended($1, 0))", [lockNames.tenantSlot("clinic-e", 0)]);
      worker = await startWorker("bulk-messaging", { config: configWith({}), logger: memoryLogger("warn").logger, concurrency: 1 });
      const job = await enqueue("e-blocked", "clinic-e", ids);
      const queue = await producer.queue("bulk-messaging");
      // Tried and put back more than once, spending no attempt.
      const postponed = await waitFor(
        "the campaign to be postponed twice",
        async () => {
          const stored = await queue.getJob(String(job.id));
          return stored && stored.attemptsStarted >= 2 && (await stored.getState()) === "delayed" ? stored : undefined;
        },
        20_000,
      );
      expect(postponed.attemptsMade).toBe(0);
      const outcome = await cancelJob({
        store: producer.store,
        connectTimeoutMs: 3000,
        logger: memoryLogger("warn").logger,
        queue: "bulk-messaging",
        jobId: String(job.id),
        actor: "test",
        via: "cli",
      });
      expect(outcome).toMatchObject({ outcome: "removed", stateBefore: "delayed" });
      expect(await queue.getJob(String(job.id))).toBeUndefined();
    } finally {
      // Closed, which releases the slot, rather than returned to the pool holding it.
      holder.release(true);
    }
    expect(sms.requests.filter((request) => campaignOf(request) === "e-blocked")).toEqual([]);
  });
});
