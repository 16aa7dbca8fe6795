import { describe, expect, it } from "vitest";
import { type BatchSql, runCampaignBatch } from "../src/jobs/bulk-messaging/campaign-batch.js";
import { NoopProvider } from "../src/jobs/bulk-messaging/noop-provider.js";
import { RateLimiter } from "../src/jobs/bulk-messaging/rate-limiter.js";
import { useTestDb } from "./support/test-env.js";

/**
 * A batch looks up conversations first and creates the missing ones later. In
 * between, another writer (a second campaign to the same patients) may create
 * one of them: the batch's insert then skips it, and the message must still be
 * created, in that other writer's conversation, not counted as skipped.
 */
describe("bulk-messaging batch when another writer creates a conversation meanwhile", () => {
  const testDatabase = useTestDb();

  it("sends every message, in the conversation the other writer created", async () => {
    const patients = await testDatabase.db.prisma.$queryRawUnsafe<{ id: string }[]>(
      `INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'P', 'Q' || g, '+1666' || g FROM generate_series(1, 6) g RETURNING "id"::text`,
    );
    const ids = patients.map((row) => row.id).sort();
    const raced = ids.slice(0, 2);

    // Runs each statement on the pool, but just before the batch creates its
    // missing conversations, commits two of them from another connection.
    const statements: string[] = [];
    const racingSql: BatchSql = {
      query: (async (text: string, values?: unknown[]) => {
        if (text.includes(`INSERT INTO "conversations"`)) {
          await testDatabase.db.pool.query(`INSERT INTO "conversations" ("patientId", "channel") SELECT unnest($1::uuid[]), 'sms'`, [raced]);
        }
        statements.push(text);
        return testDatabase.db.pool.query(text, values);
      }) as BatchSql["query"],
    };

    const outcome = await runCampaignBatch(
      racingSql,
      { provider: new NoopProvider(), limiter: new RateLimiter(undefined), sendConcurrency: 4 },
      { campaignId: "race", channel: "sms", bodyTemplate: "Hi {{lastName}}", patientIds: ids },
    );

    expect(outcome).toMatchObject({ sent: 6, failed: 0, skipped: 0, unavailable: 0 });
    expect(statements.some((text) => text.includes(`INSERT INTO "conversations"`))).toBe(true);
    const conversations = await testDatabase.db.prisma.conversation.findMany({ where: { patientId: { in: ids } } });
    expect(conversations).toHaveLength(6);
    const messages = await testDatabase.db.prisma.messagingMessage.findMany({ where: { campaignId: "race" } });
    expect(messages).toHaveLength(6);
    const conversationOf = new Map(conversations.map((c) => [c.patientId, c.id]));
    for (const message of messages) {
      expect(message.conversationId).toBe(conversationOf.get(message.patientId));
      expect(message.status).toBe("sent");
    }
    const racedConversations = await testDatabase.db.prisma.conversation.findMany({ where: { patientId: { in: raced } } });
    expect(racedConversations.every((c) => c.lastMessageDirection === "outbound" && c.lastMessageAt !== null)).toBe(true);
  });
});
