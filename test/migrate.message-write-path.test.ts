import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { defaultMigrationsDir, migrate } from "../src/lib/migrate.js";
import { withDatabase } from "./support/services.js";

const writePath = "20261123000000_message_write_path";

/**
 * Upgrading a database that already holds messages to the write-path
 * migration (one (conversationId, patientId) foreign key, unique key led by
 * patientId, partial index for queued messages): existing rows are kept and
 * checked; a message filed under another patient's conversation stops the
 * migration, which then changes nothing.
 */
describe("migration message_write_path on a database with messages", () => {
  const adminUrl = inject("postgresAdminUrl");
  const names = [`dbjobs_t_${inject("runId")}_upgrade_ok`, `dbjobs_t_${inject("runId")}_upgrade_bad`];
  let before: string;

  beforeAll(() => {
    // The migrations as they were before this one.
    before = mkdtempSync(join(tmpdir(), "dbjobs-migrations-before-"));
    cpSync(defaultMigrationsDir, before, { recursive: true });
    for (const name of readdirSync(before).filter((entry) => entry >= writePath)) rmSync(join(before, name), { recursive: true });
  });
  afterAll(async () => {
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    for (const name of names) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
    rmSync(before, { recursive: true, force: true });
  });

  /** A database migrated up to just before the write-path migration, with two patients, their SMS conversations and one message each. */
  async function databaseBefore(name: string): Promise<{ url: string; client: pg.Client; ids: { patient: string; conversation: string }[] }> {
    const url = withDatabase(adminUrl, name);
    const result = await migrate({ url, migrationsDir: before });
    expect(result.applied).not.toContain(writePath);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query<{ patient: string; conversation: string }>(`
      WITH p AS (INSERT INTO "patients" ("firstName", "lastName") VALUES ('Ann', 'A'), ('Ben', 'B') RETURNING "id")
      INSERT INTO "conversations" ("patientId", "channel") SELECT "id", 'sms' FROM p RETURNING "patientId"::text AS patient, "id"::text AS conversation`);
    for (const row of rows) {
      await client.query(
        `INSERT INTO "messaging_messages" ("conversationId", "patientId", "campaignId", "channel", "body", "status") VALUES ($1, $2, 'old', 'sms', 'hi', 'sent')`,
        [row.conversation, row.patient],
      );
    }
    return { url, client, ids: rows };
  }

  async function indexNames(client: pg.Client): Promise<string[]> {
    const { rows } = await client.query<{ indexname: string }>(`SELECT indexname FROM pg_indexes WHERE tablename = 'messaging_messages' ORDER BY 1`);
    return rows.map((row) => row.indexname);
  }

  it("keeps the messages and enforces the new key", async () => {
    const { url, client, ids } = await databaseBefore(names[0] as string);
    try {
      // This migration and every later one, in order.
      expect((await migrate({ url })).applied).toEqual(
        readdirSync(defaultMigrationsDir)
          .filter((entry) => entry >= writePath)
          .sort(),
      );
      expect(await client.query(`SELECT count(*)::int AS n FROM "messaging_messages"`)).toMatchObject({ rows: [{ n: 2 }] });
      expect(await indexNames(client)).toEqual([
        "messaging_messages_conversationId_createdAt_idx",
        "messaging_messages_patientId_campaignId_channel_key",
        "messaging_messages_pkey",
        "messaging_messages_queued_scheduledAt_idx",
      ]);
      const [ann, ben] = ids as [{ patient: string; conversation: string }, { patient: string; conversation: string }];
      await expect(
        client.query(`INSERT INTO "messaging_messages" ("conversationId", "patientId", "campaignId", "channel", "body") VALUES ($1, $2, 'new', 'sms', 'x')`, [
          ann.conversation,
          ben.patient,
        ]),
      ).rejects.toMatchObject({ code: "23503", constraint: "messaging_messages_conversationId_patientId_fkey" });
    } finally {
      await client.end();
    }
  });

  it("stops on a message filed under another patient's conversation, names the key and changes nothing", async () => {
    const { url, client, ids } = await databaseBefore(names[1] as string);
    try {
      const [ann, ben] = ids as [{ patient: string; conversation: string }, { patient: string; conversation: string }];
      // Allowed by the two separate keys of the old schema.
      await client.query(
        `INSERT INTO "messaging_messages" ("conversationId", "patientId", "campaignId", "channel", "body") VALUES ($1, $2, 'mixed', 'sms', 'x')`,
        [ann.conversation, ben.patient],
      );
      const indexesBefore = await indexNames(client);

      await expect(migrate({ url })).rejects.toThrow(/messaging_messages_conversationId_patientId_fkey/);
      expect(await indexNames(client)).toEqual(indexesBefore);
      const { rows } = await client.query(`SELECT 1 FROM "_prisma_migrations" WHERE migration_name = $1 AND finished_at IS NOT NULL`, [writePath]);
      expect(rows).toHaveLength(0);
    } finally {
      await client.end();
    }
  });
});
