import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { enqueueInTransactions, relayedTotal, startRelay } from "./support/relay-process.js";
import type { CliRun } from "./support/spawn-cli.js";
import { testConfig, testQueueBackend, useTestDb } from "./support/test-env.js";
import { openTransactionalQueues, type TransactionalQueues } from "./support/transactional-queues.js";
import { waitFor } from "./support/wait-for.js";

/**
 * Two relays share the outbox: each claims with FOR UPDATE SKIP LOCKED, so no
 * row is added by both, and every job reaches Redis exactly once. Redis
 * backend only: on PostgreSQL there is no relay.
 */
describe.skipIf(testQueueBackend() !== "redis")("outbox relay: two relays at once", () => {
  const testDatabase = useTestDb();
  const total = 3000;
  let config: Config;
  let queues: TransactionalQueues;
  let pool: pg.Pool;
  let relays: CliRun[] = [];

  beforeAll(async () => {
    config = testConfig(testDatabase.url);
    queues = await openTransactionalQueues(config, testDatabase.db.pool, { relay: false });
    pool = new pg.Pool({ connectionString: testDatabase.url, max: 10 });
  });

  afterAll(async () => {
    for (const relay of relays) relay.child.kill("SIGKILL");
    await pool?.end();
    await queues?.close();
  });

  it("share the work, and each job reaches Redis exactly once", async () => {
    relays = await Promise.all([startRelay(config, ["--batch-size", "50"]), startRelay(config, ["--batch-size", "50"])]);
    const enqueued = await enqueueInTransactions(queues.producer, pool, total, { concurrency: 6, prefix: "pair" });
    await waitFor("the relays to drain the outbox", async () => (await queues.outboxRows()) === 0, 120_000);

    for (const relay of relays) relay.child.kill("SIGTERM");
    const exits = await Promise.all(relays.map((relay) => relay.exited));
    expect(exits.map((exit) => exit.code)).toEqual([0, 0]);
    const moved = relays.map(relayedTotal);
    relays = [];

    // Every add counted once: had both relays claimed a row, the sum would exceed the rows.
    expect(moved[0]! + moved[1]!).toBe(total);
    expect(Math.min(...moved), `one relay did all the work: ${moved.join(" + ")}`).toBeGreaterThan(0);
    const campaigns = (await queues.jobs("bulk-messaging")).map((job) => job.data.campaignId as string);
    expect(campaigns).toHaveLength(total);
    expect(new Set(campaigns)).toEqual(new Set(enqueued));
  }, 300_000);
});
