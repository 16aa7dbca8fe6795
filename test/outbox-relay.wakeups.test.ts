import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { queueStoreOptions } from "../src/lib/config.js";
import { createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import { type OutboxRelay, startOutboxRelay } from "../src/queues/outbox-relay.js";
import { campaignPayload } from "./support/relay-process.js";
import { memoryLogger, testConfig, testQueueBackend, useTestDb } from "./support/test-env.js";
import { openTransactionalQueues, type TransactionalQueues } from "./support/transactional-queues.js";
import { waitFor } from "./support/wait-for.js";

/**
 * The relay wakes on the NOTIFY an enqueuer's commit sends, and finds rows
 * that came without one (a lost LISTEN connection, a row written by hand) by
 * polling. Redis backend only: on PostgreSQL there is no relay.
 */
describe.skipIf(testQueueBackend() !== "redis")("outbox relay wake-ups", () => {
  const testDatabase = useTestDb();
  let config: Config;
  let queues: TransactionalQueues;
  let store: QueueStore;
  let relay: OutboxRelay | undefined;

  const startRelay = (pollIntervalMs: number) =>
    startOutboxRelay({ databaseUrl: config.DATABASE_URL, store, logger: memoryLogger("warn").logger, pollIntervalMs });
  const jobFor = async (campaignId: string) => (await queues.jobs("bulk-messaging")).find((job) => job.data.campaignId === campaignId);

  beforeAll(async () => {
    config = testConfig(testDatabase.url);
    queues = await openTransactionalQueues(config, testDatabase.db.pool, { relay: false });
    store = createQueueStore({ ...queueStoreOptions(config), role: "worker" });
  });

  afterAll(async () => {
    await relay?.close();
    await store?.close();
    await queues?.close();
  });

  it("a commit wakes the relay at once, long before its next poll", async () => {
    relay = await startRelay(600_000);
    // Let the relay's first pass and its LISTEN connection settle.
    await waitFor("the relay to listen", async () => {
      const { rowCount } = await testDatabase.db.pool.query(
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dbjobs:relay' AND query ILIKE 'LISTEN%'",
      );
      return rowCount;
    });
    const campaignId = `notified-${randomUUID()}`;
    const committedAt = Date.now();
    await testDatabase.db.prisma.$transaction(async (tx) => queues.producer.enqueue("bulk-messaging", campaignPayload(campaignId), { tx }));
    await waitFor("the notified job", () => jobFor(campaignId), 10_000);
    expect(Date.now() - committedAt).toBeLessThan(10_000);
    await relay.close();
    relay = undefined;
  });

  it("a row that came without a notification is found by the poll", async () => {
    relay = await startRelay(300);
    const campaignId = `unnotified-${randomUUID()}`;
    // Written by hand, without dbjobs.add_to_outbox: no NOTIFY.
    await testDatabase.db.pool.query(
      `INSERT INTO "dbjobs"."job_outbox" ("queue", "name", "data", "opts", "enqueued_at_ms") VALUES ('bulk-messaging', 'bulk-messaging', $1::jsonb, '{"attempts": 8}', $2)`,
      [JSON.stringify(campaignPayload(campaignId)), Date.now()],
    );
    const job = await waitFor("the polled job", () => jobFor(campaignId), 10_000);
    expect(job.opts.attempts).toBe(8);
    await queues.settled(10_000);
  });
});
