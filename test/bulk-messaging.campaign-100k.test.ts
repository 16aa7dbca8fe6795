import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboard } from "../src/dashboard/server.js";
import type { BulkMessagingResult } from "../src/jobs/bulk-messaging/contract.js";
import type { MessagingProvider, OutboundMessage } from "../src/jobs/bulk-messaging/provider.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import type { AnyQueueEvents } from "../src/lib/queue-store.js";
import { Producer } from "../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";

/**
 * Issue 22: a campaign of the size the contract promises (100,000 patients)
 * through every producer path. Each path stages the recipients as a list in
 * PostgreSQL and enqueues a campaign naming the list, so the job's payload
 * stays a few hundred bytes. A worker sends all three campaigns to a provider
 * that records every call: each patient gets exactly one message per
 * campaign, in the database and at the provider.
 */
const recipients = 100_000;
const token = "campaign-100k-test-token-0123456789";

class RecordingProvider implements MessagingProvider {
  readonly name = "recording";
  readonly calls: OutboundMessage[] = [];
  async send(message: OutboundMessage) {
    this.calls.push(message);
    return { status: "sent" as const, providerMessageId: `rec-${message.idempotencyKey}` };
  }
}

describe("a 100,000-recipient campaign through every producer path", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let producer: Producer;
  let events: AnyQueueEvents;
  let worker: RunningWorker;
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  const provider = new RecordingProvider();
  let ids: string[];

  beforeAll(async () => {
    db = testDatabase.db;
    config = testConfig(testDatabase.url, { DASHBOARD_TOKEN: token });
    const { rows } = await db.pool.query<{ id: string }>(
      `INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'Pat', 'L' || g, '+1555' || lpad(g::text, 7, '0')
         FROM generate_series(1, $1::int) g RETURNING "id"::text`,
      [recipients],
    );
    ids = rows.map((row) => row.id);
    producer = Producer.fromConfig(config);
    events = await producer.store.queueEvents("bulk-messaging");
    await events.waitUntilReady();
    dashboard = await startDashboard({ config, logger: memoryLogger("warn").logger, host: "127.0.0.1", port: 0 });
    worker = await startWorker("bulk-messaging", { config, logger: memoryLogger("warn").logger, db, services: { messaging: () => provider } });
  }, 120_000);
  afterAll(async () => {
    await worker?.close();
    await dashboard?.close();
    await events?.close();
    await producer?.close();
  });

  it("sends every message exactly once, whichever path staged and enqueued it", { timeout: 600_000 }, async () => {
    const body = "Hi {{firstName}}, your appointment is due.";
    const queue = await producer.queue("bulk-messaging");

    // TypeScript producer.
    const fromProducer = await producer.stageRecipients(ids);
    expect(fromProducer).toMatchObject({ count: recipients, created: true });
    const producerJob = await producer.enqueue("bulk-messaging", { campaignId: "via-producer", channel: "sms", body, recipientListId: fromProducer.id });

    // CLI: a file of one id per line, staged under the operator's own id.
    const file = join(tmpdir(), `recipients-${config.QUEUE_PREFIX}.txt`);
    writeFileSync(file, `${ids.join("\n")}\n`);
    const staged = await runCli(["recipients", "stage", "--file", file, "--id", "cli-100k", "--json"], cliEnv(config), 120_000);
    expect(staged.code, staged.stderr).toBe(0);
    expect(JSON.parse(staged.stdout)).toEqual({ id: "cli-100k", count: recipients, created: true });
    const payload = JSON.stringify({ campaignId: "via-cli", channel: "sms", body, recipientListId: "cli-100k" });
    const enqueued = await runCli(["enqueue", "bulk-messaging", "--data", payload, "--json"], cliEnv(config), 120_000);
    expect(enqueued.code).toBe(0);
    const cliJob = (await queue.getJob(JSON.parse(enqueued.stdout).jobId)) as Job;

    // HTTP: the ids gzipped (about 1.9 MB instead of 3.7), then a small JSON payload.
    const headers = { authorization: `Bearer ${token}` };
    const gzipped = gzipSync(ids.join("\n"));
    const stagedOverHttp = await fetch(`${dashboard.url}/recipient-lists?id=http-100k`, {
      method: "POST",
      headers: { ...headers, "content-type": "text/plain", "content-encoding": "gzip" },
      body: gzipped,
    });
    expect(stagedOverHttp.status).toBe(201);
    expect(await stagedOverHttp.json()).toEqual({ id: "http-100k", count: recipients, created: true });
    const enqueuedOverHttp = await fetch(`${dashboard.url}/queues/bulk-messaging/jobs`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ campaignId: "via-http", channel: "sms", body, recipientListId: "http-100k" }),
    });
    expect(enqueuedOverHttp.status).toBe(201);
    const httpJob = (await queue.getJob(((await enqueuedOverHttp.json()) as { id: string }).id)) as Job;

    const jobs = { "via-producer": producerJob, "via-cli": cliJob, "via-http": httpJob };
    for (const [campaignId, job] of Object.entries(jobs)) {
      // The payload names the list; it does not carry 3.9 MB of ids into every copy of the job.
      expect(JSON.stringify(job.data).length, campaignId).toBeLessThan(200);
      const result = (await waitForJob(job, events, 540_000)) as BulkMessagingResult;
      expect(result, campaignId).toEqual({ processed: recipients, total: recipients, sent: recipients, failed: 0, skipped: 0 });
    }

    // The database: one message per patient and campaign, every one sent.
    const { rows } = await db.pool.query<{ campaignId: string; messages: number; patients: number; sent: number }>(
      `SELECT "campaignId", count(*)::int AS messages, count(DISTINCT "patientId")::int AS patients, count(*) FILTER (WHERE "status" = 'sent')::int AS sent
         FROM "messaging_messages" GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual(
      Object.keys(jobs)
        .sort()
        .map((campaignId) => ({ campaignId, messages: recipients, patients: recipients, sent: recipients })),
    );

    // The provider: called once per message, and per campaign once per patient's phone.
    expect(provider.calls).toHaveLength(3 * recipients);
    expect(new Set(provider.calls.map((call) => call.idempotencyKey)).size).toBe(3 * recipients);
    expect(new Set(provider.calls.map((call) => call.to)).size).toBe(recipients);
  });
});
