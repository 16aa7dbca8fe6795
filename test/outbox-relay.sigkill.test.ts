import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { type RedisReplyHoldProxy, startRedisReplyHoldProxy } from "./support/redis-reply-hold-proxy.js";
import { enqueueInTransactions, startRelay } from "./support/relay-process.js";
import type { CliRun } from "./support/spawn-cli.js";
import { testConfig, testQueueBackend, testRedisUrl, useTestDb } from "./support/test-env.js";
import { openTransactionalQueues, type TransactionalQueues } from "./support/transactional-queues.js";
import { waitFor, waitForSessionsToEnd } from "./support/wait-for.js";

/**
 * The relay killed with SIGKILL in the middle of 10,000 transactional
 * enqueues, at the worst moment: Redis has run its adds but the relay has not
 * deleted their outbox rows. The relay reaches Redis through a proxy that
 * holds Redis's replies, so the kill lands exactly there, every time. The
 * restarted relay adds those rows again with the same job ids, which BullMQ
 * ignores, so after it drains every job is in Redis exactly once. Redis
 * backend only: on PostgreSQL the job is written natively, with no relay.
 */
describe.skipIf(testQueueBackend() !== "redis")("outbox relay: SIGKILL in the middle of 10,000 transactional enqueues", () => {
  const testDatabase = useTestDb();
  const total = 10_000;
  const kills = 2;
  let config: Config;
  let queues: TransactionalQueues;
  let pool: pg.Pool;
  let proxy: RedisReplyHoldProxy;
  let relay: CliRun | undefined;

  beforeAll(async () => {
    config = testConfig(testDatabase.url);
    queues = await openTransactionalQueues(config, testDatabase.db.pool, { relay: false });
    pool = new pg.Pool({ connectionString: testDatabase.url, max: 10 });
    proxy = await startRedisReplyHoldProxy(testRedisUrl());
  });

  afterAll(async () => {
    relay?.child.kill("SIGKILL");
    await proxy?.close();
    await pool?.end();
    await queues?.close();
  });

  const query = (sql: string, values: unknown[] = []) => pool.query(sql, values);
  const campaignsInRedis = async () => (await queues.jobs("bulk-messaging")).map((job) => job.data.campaignId as string);
  const campaignsInOutbox = async () =>
    (await query(`SELECT "data" ->> 'campaignId' AS campaign FROM "dbjobs"."job_outbox"`)).rows.map((row: { campaign: string }) => row.campaign);
  /** Outbox rows whose job is already in Redis: added, not yet deleted. */
  const addedButNotDeleted = async () => {
    const inRedis = new Set(await campaignsInRedis());
    return (await campaignsInOutbox()).filter((campaign) => inRedis.has(campaign)).length;
  };
  const startProxiedRelay = () => startRelay(config, ["--batch-size", "500"], { REDIS_URL: proxy.url });

  it("loses no job and duplicates none after a restarted relay drains", async () => {
    // About 33 s of enqueues (at least), so every kill lands while they go on.
    let enqueuesDone = false;
    const enqueueing = enqueueInTransactions(queues.producer, pool, total, { concurrency: 4, prefix: "kill", ratePerSecond: 300 }).finally(() => {
      enqueuesDone = true;
    });
    relay = await startProxiedRelay();

    const inWindowAtKill: number[] = [];
    for (let kill = 0; kill < kills; kill++) {
      const inRedis = async () => (await queues.producer.queue("bulk-messaging")).count();
      const before = await inRedis();
      await waitFor("the relay to move jobs", async () => (await inRedis()) > before, 60_000);
      proxy.holdReplies();
      await waitFor("the relay's next adds to reach Redis", async () => (await addedButNotDeleted()) > 0, 60_000, 20);
      expect(enqueuesDone, "the enqueues were over before this kill").toBe(false);
      relay.child.kill("SIGKILL");
      await relay.exited;
      // Once its sessions are gone, PostgreSQL has rolled the relay's transaction back: the rows are in the outbox again.
      await waitForSessionsToEnd("dbjobs:relay", query);
      proxy.releaseReplies();
      inWindowAtKill.push(await addedButNotDeleted());
      relay = await startProxiedRelay();
    }
    const enqueued = await enqueueing;
    await waitFor("the restarted relay to drain the outbox", async () => (await queues.outboxRows()) === 0, 120_000);

    relay.child.kill("SIGTERM");
    expect((await relay.exited).code).toBe(0);
    relay = undefined;

    expect(inWindowAtKill.every((rows) => rows > 0)).toBe(true);
    const campaigns = await campaignsInRedis();
    expect(campaigns).toHaveLength(total);
    expect(new Set(campaigns).size).toBe(total);
    expect(new Set(campaigns)).toEqual(new Set(enqueued));
  }, 300_000);
});
