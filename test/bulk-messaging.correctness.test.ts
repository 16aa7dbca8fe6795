import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpProvider } from "../src/jobs/bulk-messaging/http-provider.js";
import type { MessagingProvider } from "../src/jobs/bulk-messaging/provider.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import type { PayloadInput } from "../src/queues/contracts.js";
import { directJobContext, runHandler } from "./support/direct-job-context.js";
import { type FakeSmsServer, startFakeSmsServer } from "./support/fake-sms-server.js";
import { testConfig, useTestDb } from "./support/test-env.js";

async function insertPatients(db: Db, count: number, tag: string): Promise<{ id: string; firstName: string; lastName: string; phone: string }[]> {
  return db.prisma.$queryRawUnsafe(
    `INSERT INTO "patients" ("firstName", "lastName", "email", "phone")
     SELECT 'First' || g || '${tag}', 'Last' || g, 'p' || g || '${tag}@example.test', '+1555${tag}' || lpad(g::text, 5, '0')
       FROM generate_series(1, $1::int) g
     RETURNING "id"::text, "firstName", "lastName", "phone"`,
    count,
  );
}

function runJob(db: Db, config: Config, provider: MessagingProvider, payload: unknown, progress: object[] = []) {
  const direct = directJobContext(db, config, { services: { messaging: () => provider } });
  direct.context.reportProgress = async (value) => {
    progress.push(value as object);
  };
  return runHandler("bulk-messaging", payload as PayloadInput<"bulk-messaging">, direct.context);
}

describe("bulk-messaging sends a campaign", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let sms: FakeSmsServer;
  let provider: HttpProvider;

  beforeAll(async () => {
    db = testDatabase.db;
    config = testConfig(testDatabase.url);
    sms = await startFakeSmsServer();
    provider = new HttpProvider({ baseUrl: sms.url, accountSid: sms.accountSid, authToken: sms.authToken, from: "+15550000000", baseDelayMs: 5 });
  });
  afterAll(async () => {
    await sms.close();
  });

  it("creates one personalised message per patient, creates missing conversations, and skips unknown ids", async () => {
    const patients = await insertPatients(db, 25, "01");
    // Ten of them already talk to us by SMS; one only by email.
    const withConversation = patients.slice(0, 10);
    await db.prisma.conversation.createMany({ data: withConversation.map((p) => ({ patientId: p.id, channel: "sms" as const })) });
    await db.prisma.conversation.create({ data: { patientId: (patients[20] as { id: string }).id, channel: "email" } });
    const existingIds = new Map((await db.prisma.conversation.findMany({ where: { channel: "sms" } })).map((c) => [c.patientId, c.id]));
    const unknown = [randomUUID(), "not-a-uuid"];

    const progress: object[] = [];
    const result = await runJob(
      db,
      config,
      provider,
      {
        campaignId: "spring-promo",
        channel: "sms",
        body: "Hi {{firstName}} {{lastName}}, 20% off this week.",
        patientIds: [...patients.map((p) => p.id), ...unknown],
        batchSize: 10,
      },
      progress,
    );

    expect(result).toEqual({ processed: 27, total: 27, sent: 25, failed: 0, skipped: 2 });
    expect(progress).toHaveLength(3);
    expect(progress.at(-1)).toEqual(result);
    expect(progress[0]).toMatchObject({ processed: 10, total: 27, sent: 10 });

    const messages = await db.prisma.messagingMessage.findMany({ where: { campaignId: "spring-promo" } });
    expect(messages).toHaveLength(25);
    const byPatient = new Map(messages.map((m) => [m.patientId, m]));
    const deliveredTo = new Map(sms.deliveries.map((d) => [d.to, d]));
    for (const patient of patients) {
      const message = byPatient.get(patient.id);
      expect(message?.body).toBe(`Hi ${patient.firstName} ${patient.lastName}, 20% off this week.`);
      expect(message?.status).toBe("sent");
      expect(message?.sentAt).toBeInstanceOf(Date);
      expect(message?.channel).toBe("sms");
      expect(message?.direction).toBe("outbound");
      // The provider got this message's id as idempotency key and its sid was recorded.
      const delivery = deliveredTo.get(patient.phone);
      expect(delivery?.idempotencyKey).toBe(message?.id);
      expect(delivery?.body).toBe(message?.body);
      expect(message?.providerMessageId).toBe(delivery?.sid);
    }
    expect(sms.deliveries).toHaveLength(25);

    const conversations = await db.prisma.conversation.findMany({ where: { channel: "sms" } });
    expect(conversations).toHaveLength(25);
    for (const conversation of conversations) {
      expect(conversation.lastMessageDirection).toBe("outbound");
      expect(conversation.lastMessageAt).toEqual(byPatient.get(conversation.patientId)?.sentAt);
      expect(byPatient.get(conversation.patientId)?.conversationId).toBe(conversation.id);
      // Existing conversations are reused, not duplicated.
      if (existingIds.has(conversation.patientId)) expect(conversation.id).toBe(existingIds.get(conversation.patientId));
    }
  });

  it("records a patient without a phone number as failed without calling the provider", async () => {
    const [patient] = await insertPatients(db, 1, "02");
    await db.prisma.patient.update({ where: { id: patient?.id }, data: { phone: null } });
    const before = sms.requests.length;
    const result = await runJob(db, config, provider, { campaignId: "no-phone", channel: "sms", body: "Hello", patientIds: [patient?.id] });
    expect(result).toMatchObject({ sent: 0, failed: 1, skipped: 0 });
    const message = await db.prisma.messagingMessage.findFirstOrThrow({ where: { campaignId: "no-phone" } });
    expect(message.status).toBe("failed");
    expect(message.error).toMatch(/no phone number/);
    expect(sms.requests.length).toBe(before);
  });

  it("sends by email to the patient's address and keeps the email conversation separate", async () => {
    const patients = await insertPatients(db, 3, "03");
    const result = await runJob(db, config, provider, {
      campaignId: "newsletter",
      channel: "email",
      body: "Dear {{firstName}}",
      patientIds: patients.map((p) => p.id),
    });
    expect(result).toMatchObject({ sent: 3, failed: 0, skipped: 0 });
    const recipients = sms.deliveries.slice(-3).map((d) => d.to);
    expect(recipients.every((to) => to.endsWith("03@example.test"))).toBe(true);
    expect(await db.prisma.conversation.count({ where: { patientId: { in: patients.map((p) => p.id) }, channel: "email" } })).toBe(3);
  });
});
