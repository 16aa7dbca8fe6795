import { describe, expect, it } from "vitest";
import { type BatchSql, flushAsyncCommits, runCampaignBatch } from "../src/jobs/bulk-messaging/campaign-batch.js";
import { NoopProvider } from "../src/jobs/bulk-messaging/noop-provider.js";
import { RateLimiter } from "../src/jobs/bulk-messaging/rate-limiter.js";
import { useTestDb } from "./support/test-env.js";

/**
 * The batch lets its conversation and outcome statements commit without
 * waiting for the WAL flush, but never the statement that creates the
 * messages: the provider is called as soon as that one returns, so it must be
 * durable first (a lost `sending` row would be created again with a new id,
 * that is a new idempotency key, and sent twice). Each statement runs here in
 * a transaction of its own, and the test reads the setting it leaves for its commit.
 */
describe("bulk-messaging batch commit durability", () => {
  const testDatabase = useTestDb();

  it("commits conversations and outcomes asynchronously and the messages synchronously", async () => {
    const patients = await testDatabase.db.prisma.$queryRawUnsafe<{ id: string }[]>(
      `INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'P', 'Q' || g, '+1777' || g FROM generate_series(1, 4) g RETURNING "id"::text`,
    );
    const ids = patients.map((row) => row.id);
    await testDatabase.db.pool.query(`INSERT INTO "conversations" ("patientId", "channel") VALUES ($1, 'sms')`, [ids[0]]);

    const commits: { statement: string; synchronousCommit: string }[] = [];
    const inTransaction: BatchSql = {
      query: (async (text: string, values?: unknown[]) => {
        const client = await testDatabase.db.pool.connect();
        try {
          await client.query("BEGIN");
          const result = await client.query(text, values);
          const { rows } = await client.query<{ synchronous_commit: string }>("SHOW synchronous_commit");
          await client.query("COMMIT");
          const statement = text.includes(`INSERT INTO "conversations"`)
            ? "create conversations"
            : text.includes(`INSERT INTO "messaging_messages"`)
              ? "create messages"
              : text.includes(`UPDATE "messaging_messages"`)
                ? "record outcomes"
                : "lookup";
          commits.push({ statement, synchronousCommit: rows[0]?.synchronous_commit ?? "?" });
          return result;
        } finally {
          client.release();
        }
      }) as BatchSql["query"],
    };

    const outcome = await runCampaignBatch(
      inTransaction,
      { provider: new NoopProvider(), limiter: new RateLimiter(undefined), sendConcurrency: 2 },
      { campaignId: "durability", channel: "sms", bodyTemplate: "Hi {{lastName}}", patientIds: ids },
    );

    expect(outcome).toMatchObject({ sent: 4, failed: 0, skipped: 0 });
    expect(commits).toEqual([
      { statement: "lookup", synchronousCommit: "on" },
      { statement: "create conversations", synchronousCommit: "off" },
      { statement: "create messages", synchronousCommit: "on" },
      { statement: "record outcomes", synchronousCommit: "off" },
    ]);
    // The setting was local to each statement's transaction: the pool's sessions are back to the default.
    const { rows } = await testDatabase.db.pool.query<{ synchronous_commit: string }>("SHOW synchronous_commit");
    expect(rows[0]?.synchronous_commit).toBe("on");
  });

  it("flushes the WAL of earlier asynchronous commits when the job ends", async () => {
    const { db } = testDatabase;
    const writer = await db.pool.connect();
    try {
      // A commit that does not wait for the flush, as statements 2 and 4 do, big enough that its WAL is not yet flushed.
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
