import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { Producer } from "../src/queues/producer.js";
import { type FakeSmsServer, smsProviderEnv, startFakeSmsServer } from "./support/fake-sms-server.js";
import { type CliRun, cliEnv, runCli, spawnCli } from "./support/spawn-cli.js";
import { testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * A campaign cancelled half-way with `dbjobs cancel`, run in another process
 * than the worker that holds the job. The worker stops starting sends, aborts
 * the requests in flight and the batch they belong to; every batch is whole
 * (its messages were created by one statement), the provider got no more
 * calls than were in flight, and the same campaign enqueued again finishes it
 * with one message and one delivered SMS per patient.
 */
describe("cancel: a bulk-messaging campaign cancelled from another process", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let sms: FakeSmsServer;
  let worker: CliRun | undefined;
  const recipients = 600;
  const batchSize = 25;
  const sendConcurrency = 4;
  /** Batches a job runs at once (batchConcurrency in the handler). */
  const batchesInFlight = 2;

  beforeAll(async () => {
    db = testDatabase.db;
    config = testConfig(testDatabase.url);
    sms = await startFakeSmsServer();
  });
  afterAll(async () => {
    if (worker && worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
    await worker?.exited;
    await sms.close();
  });

  it("stops mid-way with whole batches, no extra provider calls, and resumes exactly once", { timeout: 240_000 }, async () => {
    const patients = await db.prisma.$queryRawUnsafe<{ id: string }[]>(
      `INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'Pat', 'Ient' || g, '+1555400' || lpad(g::text, 4, '0')
         FROM generate_series(1, $1::int) g RETURNING "id"::text`,
      recipients,
    );
    sms.respond = () => ({ kind: "accept", delayMs: 300 });
    const env = cliEnv(
      config,
      smsProviderEnv(sms, {
        DBJOBS_ACTOR: "tester",
      }),
    );
    worker = spawnCli(["worker", "bulk-messaging"], env);
    const producer = Producer.fromConfig(config);
    const payload = {
      campaignId: "cancelled",
      channel: "sms" as const,
      body: "Hi {{firstName}}",
      patientIds: patients.map((p) => p.id),
      batchSize,
      sendConcurrency,
    };
    try {
      await worker.waitForOutput(/worker started/, 90_000);
      const job = await producer.enqueue("bulk-messaging", payload);
      await waitFor("some deliveries", async () => sms.deliveries.length >= 60, 90_000, 20);

      const cancel = runCli(["cancel", "bulk-messaging", String(job.id), "--json"], env);
      await worker.waitForOutput(/job cancelled by an operator/, 60_000);
      const requestsWhenCancelled = sms.requests.length;
      const { code, stdout } = await cancel;
      expect(code).toBe(0);
      const outcome = JSON.parse(stdout) as { outcome: string; failedReason: string };
      expect(outcome.outcome).toBe("cancelled");
      expect(outcome.failedReason).toMatch(/^cancelled: by tester \(cli\); committed before the cancel: \{"processed":\d+,"total":600,"sent":\d+/);

      // No call after the cancel beyond those already in flight, and none later on.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(sms.requests.length - requestsWhenCancelled).toBeLessThanOrEqual(sendConcurrency * batchesInFlight);
      const requestsAfter = sms.requests.length;
      expect(requestsAfter).toBeLessThan(recipients);

      // Whole batches only: each batch's messages were created by one statement.
      const byStatus = await db.prisma.messagingMessage.groupBy({ by: ["status"], where: { campaignId: "cancelled" }, _count: true });
      const count = (status: string) => byStatus.find((row) => row.status === status)?._count ?? 0;
      const created = byStatus.reduce((sum, row) => sum + row._count, 0);
      expect(created % batchSize).toBe(0);
      expect(created).toBeLessThan(recipients);
      expect(count("sent")).toBeGreaterThan(0);
      // Left `sending`: only the messages of the batches that were in flight.
      expect(count("sending")).toBeLessThanOrEqual(batchSize * batchesInFlight);
      expect(count("failed")).toBe(0);

      // `dbjobs jobs` tells it apart from jobs that failed on their own.
      const listed = await runCli(["jobs", "bulk-messaging", "--state", "failed", "--json"], env);
      expect((JSON.parse(listed.stdout) as { jobs: { id: string; state: string }[] }).jobs).toEqual([
        expect.objectContaining({ id: String(job.id), state: "cancelled" }),
      ]);
      const failed = await (await producer.queue("bulk-messaging")).getJob(String(job.id));
      expect(failed?.attemptsMade).toBe(1);

      // The same campaign again: it resumes and every patient gets exactly one SMS.
      sms.respond = () => ({ kind: "accept" });
      const again = await producer.enqueue("bulk-messaging", payload);
      await waitFor("the rerun to complete", async () => (await again.getState()) === "completed", 120_000, 100);
      await worker.waitForOutput(/campaign finished/, 10_000);
    } finally {
      await producer.close();
    }
    const messages = await db.prisma.messagingMessage.findMany({ where: { campaignId: "cancelled" } });
    expect(messages).toHaveLength(recipients);
    expect(messages.every((message) => message.status === "sent")).toBe(true);
    const deliveredTo = new Map<string, number>();
    for (const delivery of sms.deliveries) deliveredTo.set(delivery.to, (deliveredTo.get(delivery.to) ?? 0) + 1);
    expect(deliveredTo.size).toBe(recipients);
    expect([...deliveredTo.values()].every((n) => n === 1)).toBe(true);
  });
});
