import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BulkMessagingResult } from "../src/jobs/bulk-messaging/contract.js";
import { HttpProvider } from "../src/jobs/bulk-messaging/http-provider.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import type { AnyQueueEvents } from "../src/lib/queue-store.js";
import { Producer } from "../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { type FakeSmsServer, startFakeSmsServer } from "./support/fake-sms-server.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";

describe("bulk-messaging enqueued twice sends once", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let sms: FakeSmsServer;
  let worker: RunningWorker;
  let producer: Producer;
  let events: AnyQueueEvents;

  beforeAll(async () => {
    db = testDatabase.db;
    config = testConfig(testDatabase.url);
    sms = await startFakeSmsServer();
    const provider = new HttpProvider({ baseUrl: sms.url, accountSid: sms.accountSid, authToken: sms.authToken, from: "dbjobs", baseDelayMs: 10 });
    worker = await startWorker("bulk-messaging", { config, logger: memoryLogger("warn").logger, db, services: { messaging: () => provider } });
    producer = Producer.fromConfig(config);
    events = await producer.store.queueEvents("bulk-messaging");
    await events.waitUntilReady();
  });
  afterAll(async () => {
    await events.close();
    await producer.close();
    await worker.close();
    await sms.close();
  });

  async function patients(count: number, tag: string): Promise<{ id: string; phone: string }[]> {
    return db.prisma.$queryRawUnsafe(
      `INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'Pat', 'Ient' || g, '+1555${tag}' || lpad(g::text, 4, '0')
         FROM generate_series(1, $1::int) g RETURNING "id"::text, "phone"`,
      count,
    );
  }

  const requestsTo = (phones: Set<string>) => sms.requests.filter((request) => phones.has(request.to)).length;

  it("one after the other: the second job finds every message sent and calls the provider for none", async () => {
    const recipients = await patients(40, "21");
    const phones = new Set(recipients.map((p) => p.phone));
    const payload = {
      campaignId: "twice-in-a-row",
      channel: "sms" as const,
      body: "Hello {{firstName}}",
      patientIds: recipients.map((p) => p.id),
      batchSize: 15,
    };

    const first = await producer.enqueue("bulk-messaging", payload);
    expect(await waitForJob(first, events, 60_000)).toEqual({ processed: 40, total: 40, sent: 40, failed: 0, skipped: 0 });
    expect(requestsTo(phones)).toBe(40);

    const second = await producer.enqueue("bulk-messaging", payload);
    expect(second.id).not.toBe(first.id);
    const result = (await waitForJob(second, events, 60_000)) as BulkMessagingResult;
    expect(result).toEqual({ processed: 40, total: 40, sent: 40, failed: 0, skipped: 0 });

    expect(await db.prisma.messagingMessage.count({ where: { campaignId: "twice-in-a-row" } })).toBe(40);
    expect(requestsTo(phones)).toBe(40);
    expect(await db.prisma.conversation.count({ where: { patientId: { in: recipients.map((p) => p.id) } } })).toBe(40);
  });

  it("at the same time: the jobs take turns and every patient gets one message", async () => {
    const recipients = await patients(60, "22");
    const phones = new Set(recipients.map((p) => p.phone));
    // Slow enough that both jobs are active together (the worker runs two at once).
    const payload = {
      campaignId: "twice-at-once",
      channel: "sms" as const,
      body: "Hi",
      patientIds: recipients.map((p) => p.id),
      batchSize: 10,
      sendRatePerSecond: 60,
    };

    const [a, b] = await Promise.all([producer.enqueue("bulk-messaging", payload), producer.enqueue("bulk-messaging", payload)]);
    const results = await Promise.all([waitForJob(a, events, 90_000), waitForJob(b, events, 90_000)]);
    for (const result of results) expect(result).toEqual({ processed: 60, total: 60, sent: 60, failed: 0, skipped: 0 });

    const messages = await db.prisma.messagingMessage.findMany({ where: { campaignId: "twice-at-once" } });
    expect(messages).toHaveLength(60);
    expect(new Set(messages.map((m) => m.patientId)).size).toBe(60);
    expect(requestsTo(phones)).toBe(60);
    const deliveries = sms.deliveries.filter((d) => phones.has(d.to));
    expect(new Set(deliveries.map((d) => d.idempotencyKey))).toEqual(new Set(messages.map((m) => m.id)));
  });
});
