import { expect } from "vitest";
import { type FakeSmsServer, smsProviderEnv, startFakeSmsServer } from "./support/fake-sms-server.js";
import { type FaultWorld, faultMatrix } from "./support/fault-matrix.js";

/**
 * bulk-messaging under the fault matrix: a 600-patient campaign to the SMS
 * API (a local server that, like Twilio, answers a repeated idempotency key
 * with its first answer), half of whose answers come slowly, so each fault
 * lands with batches in flight. Check: every patient has exactly one sent
 * message, the API delivered exactly one SMS per phone, and each message
 * records the sid of its own delivery.
 */
const recipients = 600;
const campaignId = "fault-matrix";

interface State {
  sms: FakeSmsServer;
  patientIds: string[];
  deliveredAtFirstFault: number;
}

faultMatrix<State>({
  queue: "bulk-messaging",
  async prepare(world) {
    const { rows } = await world.db.pool.query<{ id: string }>(
      `INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'Pat', 'Ient' || g, '+1555400' || lpad(g::text, 4, '0')
         FROM generate_series(1, $1::int) g RETURNING "id"::text`,
      [recipients],
    );
    const sms = await startFakeSmsServer();
    sms.respond = (_request, n) => ({ kind: "accept", delayMs: n % 2 === 0 ? 120 : 0 });
    return { sms, patientIds: rows.map((row) => row.id), deliveredAtFirstFault: 0 };
  },
  workerEnv: (_world, { sms }) =>
    smsProviderEnv(sms, {
      MESSAGING_HTTP_TIMEOUT_MS: "2000",
    }),
  enqueue: (world, state) =>
    world.producer.enqueue("bulk-messaging", {
      campaignId,
      channel: "sms",
      body: "Hi {{firstName}}",
      patientIds: state.patientIds,
      batchSize: 25,
      sendRatePerSecond: 60,
    }),
  async midWork(_world, state, nth) {
    const delivered = state.sms.deliveries.length;
    if (nth === 1 && delivered >= 100) {
      state.deliveredAtFirstFault = delivered;
      return true;
    }
    return nth === 2 && delivered >= state.deliveredAtFirstFault + 100;
  },
  release: (state) => state.sms.close(),
  async verify(world: FaultWorld, state, job) {
    expect(job.returnvalue).toMatchObject({ total: recipients, sent: recipients, failed: 0 });
    const { rows: messages } = await world.db.pool.query<{ id: string; patientId: string; status: string; providerMessageId: string | null }>(
      `SELECT id::text, "patientId"::text AS "patientId", status::text, "providerMessageId" FROM messaging_messages WHERE "campaignId" = $1`,
      [campaignId],
    );
    expect(messages).toHaveLength(recipients);
    expect(new Set(messages.map((message) => message.patientId)).size).toBe(recipients);
    expect(messages.filter((message) => message.status !== "sent")).toEqual([]);

    const perPhone = new Map<string, number>();
    for (const delivery of state.sms.deliveries) perPhone.set(delivery.to, (perPhone.get(delivery.to) ?? 0) + 1);
    expect(perPhone.size).toBe(recipients);
    expect([...perPhone.values()].filter((count) => count !== 1)).toEqual([]);
    const sidByKey = new Map(state.sms.deliveries.map((delivery) => [delivery.idempotencyKey, delivery.sid]));
    expect(messages.filter((message) => message.providerMessageId !== sidByKey.get(message.id))).toEqual([]);
  },
});
