import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { NoopProvider } from "../src/jobs/bulk-messaging/noop-provider.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { countingDb } from "./support/counting-pool.js";
import { directJobContext, runHandler } from "./support/direct-job-context.js";
import { testConfig, useTestDb } from "./support/test-env.js";

/**
 * Seed 004's loop ran six queries per recipient. The job must run a fixed
 * number per batch whatever the batch size: counted here from both ways a job
 * can reach the database, the pg pool (through countingDb) and Prisma (its
 * query events). The campaign's advisory lock and unlock run on a session
 * client of their own, once per job, and are not counted.
 */
describe("bulk-messaging statements per batch", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let counted: ReturnType<typeof countingDb>;
  let config: Config;
  const prismaStatements: string[] = [];

  beforeAll(async () => {
    db = testDatabase.db;
    counted = countingDb(db);
    (db.prisma as unknown as { $on(event: "query", listener: (event: { query: string }) => void): void }).$on("query", (event) => {
      prismaStatements.push(event.query);
    });
    config = testConfig(testDatabase.url);
  });

  /** 2,000 new patients, every other one already with an SMS conversation, plus 20 unknown ids. */
  async function campaignPatients(): Promise<string[]> {
    const rows = await db.prisma.$queryRawUnsafe<{ id: string }[]>(
      `INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'P', 'Q' || g, '+1' || g FROM generate_series(1, 2000) g RETURNING "id"::text`,
    );
    const ids = rows.map((row) => row.id);
    await db.prisma.conversation.createMany({ data: ids.filter((_, index) => index % 2 === 0).map((patientId) => ({ patientId, channel: "sms" as const })) });
    return [...ids, ...Array.from({ length: 20 }, () => randomUUID())];
  }

  /** Runs the campaign and returns how many statements it sent, through the pool and through Prisma. */
  async function statementsFor(patientIds: string[], batchSize: number): Promise<number> {
    await new Promise((resolve) => setImmediate(resolve));
    counted.statements.length = 0;
    prismaStatements.length = 0;
    const { context } = directJobContext(counted.db, config, { services: { messaging: () => new NoopProvider() } });
    const result = await runHandler(
      "bulk-messaging",
      { campaignId: `count-${batchSize}`, channel: "sms", body: "Hi {{firstName}}", patientIds, batchSize },
      context,
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(result).toMatchObject({ processed: 2020, sent: 2000, skipped: 20 });
    return counted.statements.length + prismaStatements.length;
  }

  // Every full batch has patients with and without a conversation, so it runs all
  // three statements (lookup, create conversations, write the sent messages);
  // the last batch holds only the 20 unknown ids and stops after the lookup.
  // Batches run two at a time, so the count is per job.
  it.each([100, 1000])("is three per batch at batch size %i, whatever the size", async (batchSize) => {
    const patientIds = await campaignPatients();
    const fullBatches = 2000 / batchSize;
    expect(await statementsFor(patientIds, batchSize)).toBe(3 * fullBatches + 1);
  });

  it("is one per batch when rerun on a finished campaign (the lookup finds every message sent)", async () => {
    const patientIds = await campaignPatients();
    await statementsFor(patientIds, 500);
    expect(await statementsFor(patientIds, 500)).toBe(4 * 1 + 1);
  });
});
