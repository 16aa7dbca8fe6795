import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import type { Producer } from "../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
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

  const enqueue = (campaignId: string, tenantId: string, patientIds: string[]) =>
    producer.enqueue("bulk-messaging", { campaignId, tenantId, channel: "sms", body: `${campaignId} {{lastName}}`, patientIds, batchSize, sendConcurrency: 8 });

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
    worker = await startWorker("bulk-messaging", { config: configWith({}), logger: memoryLogger("warn").logger, concurrency: 1 });
    const bigJobs = [await enqueue("a-first", "clinic-a", bigIds), await enqueue("a-second", "clinic-a", bigIds)];
    await waitFor("clinic A to be sending", async () => sms.requests.length >= 3 * batchSize, 30_000);

    const smallEnqueuedAt = Date.now();
    const small = await enqueue("b-reminders", "clinic-b", smallIds);
    const smallResult = await small.waitUntilFinished(client.events, 40_000);
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
      expect(await job.waitUntilFinished(client.events, 60_000)).toEqual({ processed: 2000, total: 2000, sent: 2000, failed: 0, skipped: 0 });
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
});
