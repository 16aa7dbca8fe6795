import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboard } from "../src/dashboard/server.js";
import type { MessagingProvider, OutboundMessage } from "../src/jobs/bulk-messaging/provider.js";
import { RecipientListError } from "../src/jobs/bulk-messaging/recipient-lists.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { PayloadValidationError } from "../src/lib/errors.js";
import { Producer } from "../src/queues/producer.js";
import { deadPort } from "./support/dead-port.js";
import { directJobContext, runHandler } from "./support/direct-job-context.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";

/**
 * Recipient lists: staging is idempotent and all-or-nothing on every path,
 * bad input is refused with the place of each bad id, lists expire, and a
 * campaign on a list sends to each member once, page after page.
 */
const token = "recipient-lists-test-token-0123456789";

class RecordingProvider implements MessagingProvider {
  readonly name = "recording";
  readonly sent: OutboundMessage[] = [];
  async send(message: OutboundMessage) {
    this.sent.push(message);
    return { status: "sent" as const, providerMessageId: `rec-${message.idempotencyKey}` };
  }
}

describe("recipient lists", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let producer: Producer;
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  let patientIds: string[];

  beforeAll(async () => {
    db = testDatabase.db;
    config = testConfig(testDatabase.url, { DASHBOARD_TOKEN: token });
    producer = Producer.fromConfig(config);
    dashboard = await startDashboard({ config, logger: memoryLogger("warn").logger, host: "127.0.0.1", port: 0 });
    const rows = await db.pool.query<{ id: string }>(
      `INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'Pat', 'L' || g, '+1555700' || lpad(g::text, 4, '0')
         FROM generate_series(1, 23) g RETURNING "id"::text`,
    );
    patientIds = rows.rows.map((row) => row.id);
  });
  afterAll(async () => {
    await dashboard?.close();
    await producer?.close();
  });

  const listCount = async () => (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "dbjobs"."recipient_lists"`)).rows[0]?.n;
  const memberCount = async (listId: string) =>
    (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "dbjobs"."recipient_list_members" WHERE "list_id" = $1`, [listId])).rows[0]?.n;
  const post = (path: string, body: Buffer | string, headers: Record<string, string>) =>
    fetch(`${dashboard.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}`, ...headers }, body });

  it("stages the same recipients under the same id, whatever their order, case or repeats, and writes them once", async () => {
    const first = await producer.stageRecipients(patientIds.slice(0, 10));
    expect(first).toMatchObject({ count: 10, created: true });
    expect(first.id).toMatch(/^rl-[0-9a-f]{32}$/);
    const shuffled = [...patientIds.slice(0, 10)].reverse().map((id, index) => (index % 2 ? id.toUpperCase() : id));
    const again = await producer.stageRecipients([...shuffled, patientIds[3] as string]);
    expect(again).toEqual({ id: first.id, count: 10, created: false });
    expect(await memberCount(first.id)).toBe(10);

    // The same content over HTTP (gzipped, CRLF lines, a blank line) finds the same list.
    const body = gzipSync(`${patientIds.slice(0, 10).join("\r\n")}\r\n\r\n`);
    const response = await post("/recipient-lists", body, { "content-type": "text/plain", "content-encoding": "gzip" });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ id: first.id, count: 10, created: false });
  });

  it("refuses a client-given id that already holds other recipients, changing nothing", async () => {
    await producer.stageRecipients(patientIds.slice(0, 5), { listId: "spring-2026" });
    await expect(producer.stageRecipients(patientIds.slice(5, 9), { listId: "spring-2026" })).rejects.toThrow(
      /recipient list "spring-2026" already holds other recipients \(5\); stage these under a new id/,
    );
    const response = await post("/recipient-lists?id=spring-2026", patientIds.slice(5, 9).join("\n"), { "content-type": "text/plain" });
    expect(response.status).toBe(409);
    expect(await memberCount("spring-2026")).toBe(5);
  });

  it("names each bad id and stages nothing, on every path", async () => {
    const before = await listCount();
    const bad = [patientIds[0] as string, "42", patientIds[1] as string, "not-a-uuid"];
    const error = await producer.stageRecipients(bad).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RecipientListError);
    expect((error as Error).message).toBe(
      'ids: ids[1]: "42" is not a uuid; ids[3]: "not-a-uuid" is not a uuid. Give one patient uuid per entry; nothing was staged.',
    );

    const response = await post("/recipient-lists", bad.join("\n"), { "content-type": "text/plain" });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/^body: line 2: "42" is not a uuid; line 4: "not-a-uuid" is not a uuid\./);
    expect((await post("/recipient-lists", JSON.stringify(bad), { "content-type": "application/json" })).status).toBe(415);
    expect((await post("/recipient-lists", "", { "content-type": "text/plain" })).status).toBe(400);
    const notGzip = await post("/recipient-lists", bad.join("\n"), { "content-type": "text/plain", "content-encoding": "gzip" });
    expect(notGzip.status).toBe(400);
    expect(((await notGzip.json()) as { error: string }).error).toBe("the body is not valid gzip; nothing was staged");

    const file = join(tmpdir(), `recipients-${randomUUID()}.txt`);
    writeFileSync(file, bad.join("\n"));
    const cli = await runCli(["recipients", "stage", "--file", file], cliEnv(config));
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain(`${file}: line 2: "42" is not a uuid; line 4: "not-a-uuid" is not a uuid.`);
    expect(await listCount()).toBe(before);
  });

  it("fails fast in one line, naming the database and the setting, when PostgreSQL is unreachable", async () => {
    const unreachable = Producer.fromConfig({
      ...config,
      DATABASE_URL: `postgresql://app:s3cret@127.0.0.1:${await deadPort()}/dbjobs`,
      QUEUE_CONNECT_TIMEOUT_MS: 1000,
    });
    try {
      const started = Date.now();
      const error = await unreachable.stageRecipients(patientIds.slice(0, 2)).catch((err: unknown) => err);
      expect(Date.now() - started).toBeLessThan(5000);
      expect((error as Error).message).toMatch(
        /^Cannot reach PostgreSQL at postgresql:\/\/app:\*+@127\.0\.0\.1:\d+\/dbjobs \(ECONNREFUSED\); nothing was staged\. Start PostgreSQL or set DATABASE_URL/,
      );
      expect((error as Error).message).not.toContain("s3cret");
    } finally {
      await unreachable.close();
    }
  });

  it("takes exactly one of patientIds and recipientListId", async () => {
    const base = { campaignId: "c", channel: "sms", body: "b" } as const;
    await expect(producer.enqueue("bulk-messaging", base as never)).rejects.toThrow(
      /patientIds: give the recipients: patientIds \(an array of patient ids\) or recipientListId/,
    );
    const both = producer.enqueue("bulk-messaging", { ...base, patientIds: [patientIds[0] as string], recipientListId: "spring-2026" });
    await expect(both).rejects.toBeInstanceOf(PayloadValidationError);
    await expect(both).rejects.toThrow(/recipientListId: give patientIds or recipientListId, not both/);
  });

  it("sends a campaign on a list to each member once, in keyset pages, and a rerun sends nothing new", async () => {
    const unknown = randomUUID();
    const staged = await producer.stageRecipients([...patientIds, unknown]);
    const provider = new RecordingProvider();
    const direct = directJobContext(db, config, { services: { messaging: () => provider } });
    const payload = { campaignId: "list-campaign", channel: "sms", body: "Hi {{lastName}}", recipientListId: staged.id, batchSize: 7 } as const;

    const result = await runHandler("bulk-messaging", payload, direct.context);
    expect(result).toEqual({ processed: 24, total: 24, sent: 23, failed: 0, skipped: 1 });
    expect(provider.sent.map((message) => message.to).sort()).toEqual(
      (await db.pool.query<{ phone: string }>(`SELECT "phone" FROM "patients" WHERE "id" = ANY($1::uuid[]) ORDER BY "phone"`, [patientIds])).rows.map(
        (row) => row.phone,
      ),
    );
    // Four pages of 7 (the last one short), each reported.
    expect(direct.progress).toHaveLength(4);

    const rerun = await runHandler("bulk-messaging", payload, direct.context);
    expect(rerun).toEqual(result);
    expect(provider.sent).toHaveLength(23);
  });

  it("deletes lists unused for RECIPIENT_LIST_RETENTION_DAYS, and a campaign on a deleted list fails for good, saying what to do", async () => {
    const old = await producer.stageRecipients(patientIds.slice(0, 3), { listId: "old-list" });
    const recent = await producer.stageRecipients(patientIds.slice(0, 4), { listId: "recent-list" });
    await db.pool.query(`UPDATE "dbjobs"."recipient_lists" SET "last_used_at" = now() - interval '8 days' WHERE "id" = $1`, [old.id]);
    await db.pool.query(`UPDATE "dbjobs"."recipient_lists" SET "last_used_at" = now() - interval '6 days' WHERE "id" = $1`, [recent.id]);

    await producer.stageRecipients(patientIds.slice(0, 2));
    const left = await db.pool.query<{ id: string }>(`SELECT "id" FROM "dbjobs"."recipient_lists" WHERE "id" IN ('old-list', 'recent-list')`);
    expect(left.rows.map((row) => row.id)).toEqual(["recent-list"]);
    expect(await memberCount("old-list")).toBe(0);

    const direct = directJobContext(db, config, { services: { messaging: () => new RecordingProvider() } });
    const error = await runHandler("bulk-messaging", { campaignId: "late", channel: "sms", body: "b", recipientListId: "old-list" }, direct.context).catch(
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(RecipientListError);
    expect(error).toMatchObject({ code: "DBJOBS_RECIPIENT_LIST_MISSING", retryable: false });
    expect((error as Error).message).toMatch(/recipient list "old-list" does not exist: .*RECIPIENT_LIST_RETENTION_DAYS \(7\).* Stage the recipients again/);
  });
});
