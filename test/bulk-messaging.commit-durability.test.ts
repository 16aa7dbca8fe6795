import { describe, expect, it } from "vitest";
import { runCampaignBatch } from "../src/jobs/bulk-messaging/campaign-batch.js";
import { campaignMessageId } from "../src/jobs/bulk-messaging/campaign-message-id.js";
import { NoopProvider } from "../src/jobs/bulk-messaging/noop-provider.js";
import { RateLimiter } from "../src/jobs/bulk-messaging/rate-limiter.js";
import { flushAsyncCommits } from "../src/lib/async-commit.js";
import { commitRecordingSql } from "./support/commit-settings.js";
import { useTestDb } from "./support/test-env.js";

/**
 * The batch's two writes, the conversations and the sent messages, commit
 * without waiting for the WAL flush: a message lost with them is sent again
 * under the same id, its idempotency key, which the provider does not deliver
 * twice (see campaign-batch.ts). Each statement runs here in a transaction of
 * its own, and the test reads the setting it leaves for its commit. And the
 * id is the campaign's, the patient's and the channel's, whatever the run.
 */
describe("bulk-messaging batch commit durability", () => {
  const testDatabase = useTestDb();

  it("commits conversations and messages asynchronously, under ids a rerun derives again", async () => {
    const patients = await testDatabase.db.prisma.$queryRawUnsafe<{ id: string }[]>(
      `INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'P', 'Q' || g, '+1777' || g FROM generate_series(1, 4) g RETURNING "id"::text`,
    );
    const ids = patients.map((row) => row.id);
    await testDatabase.db.pool.query(`INSERT INTO "conversations" ("patientId", "channel") VALUES ($1, 'sms')`, [ids[0]]);

    const name = (text: string) =>
      text.includes(`INSERT INTO "conversations"`) ? "create conversations" : text.includes(`INSERT INTO "messaging_messages"`) ? "write messages" : "lookup";
    const { sql: inTransaction, commits } = commitRecordingSql(testDatabase.db.pool, name);

    const outcome = await runCampaignBatch(
      inTransaction,
      { provider: new NoopProvider(), limiter: new RateLimiter(undefined), sendConcurrency: 2 },
      { campaignId: "durability", channel: "sms", bodyTemplate: "Hi {{lastName}}", patientIds: ids },
    );

    expect(outcome).toMatchObject({ sent: 4, failed: 0, skipped: 0 });
    expect(commits).toEqual([
      { statement: "lookup", synchronousCommit: "on" },
      { statement: "create conversations", synchronousCommit: "off" },
      { statement: "write messages", synchronousCommit: "off" },
    ]);
    // The setting was local to each statement's transaction: the pool's sessions are back to the default.
    const { rows } = await testDatabase.db.pool.query<{ synchronous_commit: string }>("SHOW synchronous_commit");
    expect(rows[0]?.synchronous_commit).toBe("on");
    const written = await testDatabase.db.prisma.messagingMessage.findMany({ where: { campaignId: "durability" } });
    expect(written.map((message) => message.id).sort()).toEqual(ids.map((id) => campaignMessageId("durability", id, "sms")).sort());
    expect(campaignMessageId("durability", ids[0] as string, "email")).not.toBe(campaignMessageId("durability", ids[0] as string, "sms"));
    // Written after the send, but created as of before it: a reply that came meanwhile sorts after the message.
    for (const message of written) expect(message.createdAt.getTime()).toBeLessThanOrEqual((message.sentAt as Date).getTime());
  });

  it("flushes the WAL of earlier asynchronous commits when the job ends", async () => {
    const { db } = testDatabase;
    const writer = await db.pool.connect();
    try {
      // A commit that does not wait for the flush, as the batch's writes do, big enough that its WAL is not yet flushed.
      await writer.query("BEGIN");
      await writer.query(`SELECT set_config('synchronous_commit', 'off', true)`);
      await writer.query(`INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'F', 'L' || g, '+1888' || g FROM generate_series(1, 20000) g`);
      await writer.query("COMMIT");
      const { rows } = await writer.query<{ inserted: string }>(`SELECT pg_current_wal_insert_lsn()::text AS "inserted"`);
      await flushAsyncCommits(db.pool);
      const { rows: flushed } = await writer.query<{ covered: boolean }>(`SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn AS "covered"`, [rows[0]?.inserted]);
      expect(flushed[0]?.covered).toBe(true);
    } finally {
      writer.release();
    }
  });
});
