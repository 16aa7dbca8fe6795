import { beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../src/lib/db.js";
import { useTestDb } from "./support/test-env.js";

/**
 * What the messaging tables promise after the write-path migration
 * (prisma/migrations/20261123000000_message_write_path): one foreign key on
 * (conversationId, patientId) instead of two, a unique key led by patientId,
 * and a partial index for queued messages.
 */
describe("messaging schema rules", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let alice: { patientId: string; conversationId: string };
  let bob: { patientId: string; conversationId: string };

  async function patientWithConversation(name: string): Promise<{ patientId: string; conversationId: string }> {
    const patient = await db.prisma.patient.create({ data: { firstName: name, lastName: "Test", phone: `+1777${name.length}` } });
    const conversation = await db.prisma.conversation.create({ data: { patientId: patient.id, channel: "sms" } });
    return { patientId: patient.id, conversationId: conversation.id };
  }

  function insertMessage(conversationId: string, patientId: string, campaignId: string) {
    return db.pool.query(
      `INSERT INTO "messaging_messages" ("conversationId", "patientId", "campaignId", "channel", "body") VALUES ($1, $2, $3, 'sms', 'hello')`,
      [conversationId, patientId, campaignId],
    );
  }

  beforeAll(async () => {
    db = testDatabase.db;
    alice = await patientWithConversation("Alice");
    bob = await patientWithConversation("Bob");
  });

  it("refuses a message filed under another patient's conversation, naming the foreign key", async () => {
    await expect(insertMessage(alice.conversationId, bob.patientId, "mixed-up")).rejects.toMatchObject({
      code: "23503",
      constraint: "messaging_messages_conversationId_patientId_fkey",
    });
    await expect(insertMessage(alice.conversationId, alice.patientId, "filed-right")).resolves.toMatchObject({ rowCount: 1 });
  });

  it("still allows one message per campaign, patient and channel", async () => {
    await insertMessage(bob.conversationId, bob.patientId, "once");
    await expect(insertMessage(bob.conversationId, bob.patientId, "once")).rejects.toMatchObject({
      code: "23505",
      constraint: "messaging_messages_patientId_campaignId_channel_key",
    });
  });

  it("deletes a patient's messages with the patient, through their conversations", async () => {
    const carol = await patientWithConversation("Carol");
    await insertMessage(carol.conversationId, carol.patientId, "goodbye");
    await db.prisma.patient.delete({ where: { id: carol.patientId } });
    expect(await db.prisma.messagingMessage.count({ where: { patientId: carol.patientId } })).toBe(0);
  });

  it("reaches a patient's messages and the queued ones now due through an index", async () => {
    const plan = async (sql: string) => {
      const client = await db.pool.connect();
      try {
        await client.query("SET enable_seqscan = off");
        const { rows } = await client.query<{ "QUERY PLAN": string }>(`EXPLAIN ${sql}`);
        return rows.map((row) => row["QUERY PLAN"]).join("\n");
      } finally {
        await client.query("RESET enable_seqscan");
        client.release();
      }
    };
    expect(await plan(`SELECT * FROM "messaging_messages" WHERE "patientId" = '${alice.patientId}'`)).toContain(
      "messaging_messages_patientId_campaignId_channel_key",
    );
    expect(await plan(`SELECT * FROM "messaging_messages" WHERE "status" = 'queued' AND "scheduledAt" <= now()`)).toContain(
      "messaging_messages_queued_scheduledAt_idx",
    );
  });
});
