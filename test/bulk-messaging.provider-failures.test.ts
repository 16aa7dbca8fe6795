import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { HttpProvider, type HttpProviderOptions } from "../src/jobs/bulk-messaging/http-provider.js";
import { ProviderUnavailableError } from "../src/jobs/bulk-messaging/messaging-errors.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import type { PayloadInput } from "../src/queues/contracts.js";
import { directJobContext, runHandler } from "./support/direct-job-context.js";
import { type FakeSmsServer, startFakeSmsServer } from "./support/fake-sms-server.js";
import { testConfig, useTestDb } from "./support/test-env.js";

function message(to = "+15551230000") {
  return { idempotencyKey: randomUUID(), channel: "sms" as const, to, body: "Your appointment is tomorrow" };
}

describe("the http provider against a Twilio-style API", () => {
  let sms: FakeSmsServer;
  const provider = (options: Partial<HttpProviderOptions> = {}) =>
    new HttpProvider({
      baseUrl: sms.url,
      accountSid: sms.accountSid,
      authToken: sms.authToken,
      from: "+15550000000",
      baseDelayMs: 10,
      maxDelayMs: 50,
      ...options,
    });

  beforeAll(async () => {
    sms = await startFakeSmsServer();
  });
  beforeEach(() => {
    sms.respond = () => ({ kind: "accept" });
  });
  afterAll(async () => {
    await sms.close();
  });

  it("posts a form with basic auth and the idempotency key, and returns the provider's sid", async () => {
    const outbound = message();
    const outcome = await provider().send(outbound);
    const delivery = sms.deliveries.at(-1);
    expect(outcome).toEqual({ status: "sent", providerMessageId: delivery?.sid });
    expect(delivery).toMatchObject({ idempotencyKey: outbound.idempotencyKey, to: outbound.to, from: "+15550000000", body: outbound.body });
  });

  it("retries a 429, waiting at least its Retry-After", async () => {
    let calls = 0;
    sms.respond = () => (++calls === 1 ? { kind: "status", status: 429, retryAfter: "1" } : { kind: "accept" });
    const requestsBefore = sms.requests.length;
    const started = performance.now();
    const outcome = await provider().send(message());
    expect(outcome.status).toBe("sent");
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(sms.requests.length - requestsBefore).toBe(2);
  });

  it("retries 500s and a dropped connection with the same idempotency key", async () => {
    let calls = 0;
    sms.respond = () => {
      calls++;
      if (calls === 1) return { kind: "status", status: 500 };
      if (calls === 2) return { kind: "drop" };
      if (calls === 3) return { kind: "status", status: 503, retryAfter: "0" };
      return { kind: "accept" };
    };
    const outbound = message();
    const outcome = await provider().send(outbound);
    expect(outcome.status).toBe("sent");
    const attempts = sms.requests.filter((request) => request.idempotencyKey === outbound.idempotencyKey);
    expect(attempts).toHaveLength(4);
    expect(sms.deliveries.filter((delivery) => delivery.idempotencyKey === outbound.idempotencyKey)).toHaveLength(1);
  });

  it("after a timeout, resends with the same key and gets the first answer instead of a second SMS", async () => {
    let calls = 0;
    sms.respond = () => (++calls === 1 ? { kind: "accept", delayMs: 1500 } : { kind: "accept" });
    const outbound = message("+15559990000");
    const replaysBefore = sms.replays;
    const outcome = await provider({ timeoutMs: 300 }).send(outbound);
    const deliveries = sms.deliveries.filter((delivery) => delivery.to === "+15559990000");
    expect(deliveries).toHaveLength(1);
    expect(outcome).toEqual({ status: "sent", providerMessageId: deliveries[0]?.sid });
    expect(sms.replays).toBeGreaterThan(replaysBefore);
  });

  it("fails one message on a permanent 4xx without retrying it", async () => {
    sms.respond = () => ({ kind: "status", status: 400, message: "The 'To' number +1555 is not a valid phone number." });
    const requestsBefore = sms.requests.length;
    const outcome = await provider().send(message("+1555"));
    expect(outcome).toEqual({
      status: "failed",
      error: "provider refused the message: HTTP 400: The 'To' number +1555 is not a valid phone number. (code 40000)",
    });
    expect(sms.requests.length - requestsBefore).toBe(1);
  });

  it("gives up as unavailable after its attempts when the provider keeps failing", async () => {
    sms.respond = () => ({ kind: "status", status: 500, message: "internal error" });
    const requestsBefore = sms.requests.length;
    const outcome = await provider({ maxAttempts: 3 }).send(message());
    expect(outcome).toEqual({ status: "unavailable", error: "provider unavailable after 3 attempts: HTTP 500: internal error (code 50000)" });
    expect(sms.requests.length - requestsBefore).toBe(3);
  });

  it("does not sit out a Retry-After longer than it is willing to wait", async () => {
    sms.respond = () => ({ kind: "status", status: 429, retryAfter: "3600" });
    const requestsBefore = sms.requests.length;
    const outcome = await provider({ maxRetryAfterMs: 5000 }).send(message());
    expect(outcome.status).toBe("unavailable");
    expect(outcome.status === "unavailable" && outcome.error).toMatch(/Retry-After 3600000 ms is longer than we wait/);
    expect(sms.requests.length - requestsBefore).toBe(1);
  });
});

describe("bulk-messaging when the provider fails", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let sms: FakeSmsServer;
  let provider: HttpProvider;

  async function insertPatients(count: number, tag: string): Promise<{ id: string; phone: string }[]> {
    return db.prisma.$queryRawUnsafe(
      `INSERT INTO "patients" ("firstName", "lastName", "phone")
       SELECT 'Pat', 'Ient' || g, '+1555${tag}' || lpad(g::text, 4, '0') FROM generate_series(1, $1::int) g
       RETURNING "id"::text, "phone"`,
      count,
    );
  }

  function runJob(payload: unknown) {
    const { context } = directJobContext(db, config, { services: { messaging: () => provider } });
    return runHandler("bulk-messaging", payload as PayloadInput<"bulk-messaging">, context);
  }

  beforeAll(async () => {
    db = testDatabase.db;
    config = testConfig(testDatabase.url);
    sms = await startFakeSmsServer();
    provider = new HttpProvider({
      baseUrl: sms.url,
      accountSid: sms.accountSid,
      authToken: sms.authToken,
      from: "dbjobs",
      baseDelayMs: 10,
      maxDelayMs: 50,
      maxAttempts: 4,
    });
  });
  afterAll(async () => {
    await sms.close();
  });

  it("retries 429/500 per message and records a permanent 4xx as that one message's failure", async () => {
    const patients = await insertPatients(6, "11");
    const [bad, throttled, erroring] = patients.map((patient) => patient.phone);
    const seen = new Map<string, number>();
    sms.respond = (request) => {
      const n = (seen.get(request.to) ?? 0) + 1;
      seen.set(request.to, n);
      if (request.to === bad) return { kind: "status", status: 400, message: "not a valid phone number" };
      if (request.to === throttled && n === 1) return { kind: "status", status: 429, retryAfter: "0" };
      if (request.to === erroring && n <= 2) return { kind: "status", status: 500 };
      return { kind: "accept" };
    };

    const result = await runJob({ campaignId: "reminders", channel: "sms", body: "See you soon", patientIds: patients.map((patient) => patient.id) });

    expect(result).toEqual({ processed: 6, total: 6, sent: 5, failed: 1, skipped: 0 });
    const messages = await db.prisma.messagingMessage.findMany({
      where: { campaignId: "reminders" },
      include: { conversation: { include: { patient: true } } },
    });
    const failed = messages.filter((m) => m.status === "failed");
    expect(failed.map((m) => m.conversation.patient.phone)).toEqual([bad]);
    expect(failed[0]?.error).toMatch(/HTTP 400: not a valid phone number/);
    expect(failed[0]?.providerMessageId).toBeNull();
    expect(messages.filter((m) => m.status === "sent")).toHaveLength(5);
    expect(seen.get(throttled as string)).toBe(2);
    expect(seen.get(erroring as string)).toBe(3);
    expect(sms.deliveries.filter((d) => patients.some((p) => p.phone === d.to))).toHaveLength(5);
  });

  it("stops when the provider is down, writes only what was sent, and a rerun sends the rest exactly once", async () => {
    const patients = await insertPatients(30, "12");
    const payload = {
      campaignId: "outage",
      channel: "sms",
      body: "Hello",
      patientIds: patients.map((patient) => patient.id),
      batchSize: 10,
      sendConcurrency: 4,
    };
    let up = true;
    let accepted = 0;
    sms.respond = () => {
      if (up && ++accepted > 15) up = false;
      return up ? { kind: "accept" } : { kind: "status", status: 503, message: "maintenance" };
    };

    await expect(runJob(payload)).rejects.toThrow(ProviderUnavailableError);
    const afterOutage = await db.prisma.messagingMessage.groupBy({ by: ["status"], where: { campaignId: "outage" }, _count: true });
    const counts = Object.fromEntries(afterOutage.map((row) => [row.status, row._count]));
    // Fifteen went through and are written; the rest have no message yet: the retry sends them under their derived keys.
    expect(counts).toEqual({ sent: 15 });

    sms.respond = () => ({ kind: "accept" });
    const result = await runJob(payload);
    expect(result).toEqual({ processed: 30, total: 30, sent: 30, failed: 0, skipped: 0 });
    const messages = await db.prisma.messagingMessage.findMany({ where: { campaignId: "outage" } });
    expect(messages.every((m) => m.status === "sent")).toBe(true);
    const phones = new Set(patients.map((patient) => patient.phone));
    const deliveries = sms.deliveries.filter((delivery) => phones.has(delivery.to));
    expect(deliveries).toHaveLength(30);
    expect(new Set(deliveries.map((delivery) => delivery.to)).size).toBe(30);
    expect(new Set(deliveries.map((delivery) => delivery.idempotencyKey))).toEqual(new Set(messages.map((m) => m.id)));
  });
});
