import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { Producer } from "../src/queues/producer.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { type FakeSmsServer, smsProviderEnv, startFakeSmsServer } from "./support/fake-sms-server.js";
import { type CliRun, cliEnv, spawnCli } from "./support/spawn-cli.js";
import { testConfig, useTestDb } from "./support/test-env.js";

/**
 * A worker process killed with SIGKILL in the middle of a campaign: BullMQ's
 * stalled-job check hands the job to a second worker process, which finishes
 * it. Every patient ends with one message, and the SMS API (a local server
 * that, like Twilio, answers a repeated idempotency key with its first answer)
 * delivered exactly one SMS per patient.
 */
describe("bulk-messaging survives a worker killed mid-campaign", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let sms: FakeSmsServer;
  const workers: CliRun[] = [];
  const recipients = 300;

  beforeAll(async () => {
    db = testDatabase.db;
    config = testConfig(testDatabase.url);
    sms = await startFakeSmsServer();
  });
  afterAll(async () => {
    for (const worker of workers) if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
    await Promise.all(workers.map((worker) => worker.exited));
    await sms.close();
  });

  const startWorkerProcess = () => {
    const worker = spawnCli(
      ["worker", "bulk-messaging"],
      cliEnv(
        config,
        smsProviderEnv(sms, {
          MESSAGING_HTTP_TIMEOUT_MS: "2000",
        }),
      ),
    );
    workers.push(worker);
    return worker;
  };

  it("finishes on another worker with one message and one delivered SMS per patient", { timeout: 300_000 }, async () => {
    const patients = await db.prisma.$queryRawUnsafe<{ id: string; phone: string }[]>(
      `INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'Pat', 'Ient' || g, '+1555300' || lpad(g::text, 4, '0')
         FROM generate_series(1, $1::int) g RETURNING "id"::text, "phone"`,
      recipients,
    );
    // Half of the answers come slowly, so requests are in flight when the worker dies.
    sms.respond = (_request, n) => ({ kind: "accept", delayMs: n % 2 === 0 ? 150 : 0 });
    const producer = Producer.fromConfig(config);
    const events = await producer.store.queueEvents("bulk-messaging");
    try {
      await events.waitUntilReady();
      const first = startWorkerProcess();
      await first.waitForOutput(/worker started/, 60_000);
      const job = await producer.enqueue("bulk-messaging", {
        campaignId: "crash",
        channel: "sms",
        body: "Hi {{firstName}} {{lastName}}",
        patientIds: patients.map((patient) => patient.id),
        batchSize: 25,
        sendRatePerSecond: 40,
      });

      for (let waited = 0; sms.deliveries.length < 100 && waited < 120_000; waited += 20) await sleep(20);
      first.child.kill("SIGKILL");
      expect((await first.exited).signal).toBe("SIGKILL");
      const deliveredAtKill = sms.deliveries.length;

      const atKill = await db.prisma.messagingMessage.groupBy({ by: ["status"], where: { campaignId: "crash" }, _count: true });
      const sentAtKill = atKill.find((row) => row.status === "sent")?._count ?? 0;
      expect(sentAtKill).toBeGreaterThan(0);
      expect(sentAtKill).toBeLessThan(recipients);
      expect(sms.deliveries.length).toBeLessThan(recipients);
      // The batches in flight had SMS delivered but not yet written: the rerun must send them under the same keys and write them.
      expect(deliveredAtKill).toBeGreaterThan(sentAtKill);
      expect(atKill.map((row) => row.status)).toEqual(["sent"]);

      // The job is still "active" under the dead worker's lock; the new worker's stall check takes it over.
      startWorkerProcess();
      const result = await waitForJob(job, events, 240_000);
      expect(result).toEqual({ processed: recipients, total: recipients, sent: recipients, failed: 0, skipped: 0 });
      const finished = await (await producer.queue("bulk-messaging")).getJob(job.id as string);
      expect(await finished?.getState()).toBe("completed");
    } finally {
      await events.close();
      await producer.close();
    }

    const messages = await db.prisma.messagingMessage.findMany({ where: { campaignId: "crash" } });
    expect(messages).toHaveLength(recipients);
    expect(new Set(messages.map((m) => m.patientId)).size).toBe(recipients);
    expect(messages.every((m) => m.status === "sent")).toBe(true);

    // One SMS per phone, under the id of the one message that patient has, and that sid recorded.
    const deliveredTo = new Map<string, number>();
    for (const delivery of sms.deliveries) deliveredTo.set(delivery.to, (deliveredTo.get(delivery.to) ?? 0) + 1);
    expect(deliveredTo.size).toBe(recipients);
    expect([...deliveredTo.values()].every((count) => count === 1)).toBe(true);
    const sidByKey = new Map(sms.deliveries.map((delivery) => [delivery.idempotencyKey, delivery.sid]));
    for (const message of messages) expect(message.providerMessageId).toBe(sidByKey.get(message.id));
  });
});
