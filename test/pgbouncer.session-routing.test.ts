import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCache } from "../src/cache/cache.js";
import { cacheListenerApplicationName } from "../src/cache/cache-postgres-link.js";
import { lockNames } from "../src/lib/advisory-locks.js";
import { type Config, loadConfig } from "../src/lib/config.js";
import { reachesThroughPooler } from "../src/lib/pooler-check.js";
import { Producer } from "../src/queues/producer.js";
import { type RunningScheduler, startScheduler } from "../src/queues/scheduler.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import { type BackendSample, startActivitySampler } from "./support/activity-sampler.js";
import { seedArchivableMonth } from "./support/archive-data.js";
import { createBloatedTable } from "./support/db-maintenance-harness.js";
import { pooledRole } from "./support/pgbouncer.js";
import { createTestDatabase, memoryLogger, pooledTestUrl, type TestDatabase, testConfig, testPrefix } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * Runs only in the `pgbouncer` project. Processes get DATABASE_URL through a
 * private pgbouncer in transaction mode, which logs in to PostgreSQL as
 * dbjobs_pooled, and DIRECT_DATABASE_URL straight to PostgreSQL as the test
 * role. While real workers, a scheduler and a cache run, pg_stat_activity and
 * pg_locks are sampled; every advisory lock, LISTEN, REINDEX and partition DDL
 * must be seen, and seen only on a direct session. Each kind is held long
 * enough to be sampled: the campaign sends at 10 a second, and the partition
 * DDL, archiving's DETACH and the REINDEX wait behind a lock or a snapshot the
 * test holds until it saw them.
 */
const campaignId = "pgbouncer-routing";
const watchedLocks = [
  lockNames.scheduler(),
  lockNames.campaign("sms", campaignId),
  lockNames.partitionMaintenance("transactions"),
  lockNames.archiving("transactions"),
  lockNames.dbMaintenance(),
];

/** Partition DDL of partition-maintenance and archiving, and the table locks they take first (create-partition.ts, move-whole-partition.ts). */
const isPartitionDdl = (row: BackendSample) =>
  ["dbjobs:partition-maintenance", "dbjobs:archiving"].includes(row.applicationName) && /^\s*(LOCK TABLE|CREATE TABLE|ALTER TABLE)/i.test(row.query);

const roles = (rows: BackendSample[]) => [...new Set(rows.map((row) => row.usename))].sort();

describe("behind pgbouncer in transaction mode, session work goes through DIRECT_DATABASE_URL", () => {
  let database: TestDatabase;
  let admin: pg.Client;
  let config: Config;
  let directRole: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    config = testConfig(database.url, { QUEUE_BACKEND: "postgres", MESSAGING_PROVIDER: "noop", REDIS_URL: "" });
    // Guards the test itself: it means nothing unless DATABASE_URL really is the pooled path.
    expect(pooledTestUrl(database.url), "run in the pgbouncer project (vitest --project pgbouncer)").toBe(config.DATABASE_URL);
    expect(config.DIRECT_DATABASE_URL).toBe(database.url);
    directRole = new URL(database.url).username;
    expect(directRole).not.toBe(pooledRole);
  });

  afterAll(async () => {
    await admin?.end();
    await database?.drop();
  });

  it("the scheduler lock, a campaign's lock, partition DDL and DETACH/ATTACH, REINDEX CONCURRENTLY and every LISTEN run as the direct role", async () => {
    await createBloatedTable(database.url, "routing_bloat", 60_000);
    // A month past the archive cutoff, every row final: archiving moves it whole, by DETACH and ATTACH.
    const oldMonth = await seedArchivableMonth(admin, { rows: 200, pendingEvery: 1_000_000, keyPrefix: "routing" });
    const patients = await admin.query<{ id: string }>(
      `INSERT INTO "patients" ("firstName", "lastName", "email", "phone")
       SELECT 'P' || g, 'Routing', 'routing' || g || '@example.test', '+1555700' || lpad(g::text, 4, '0') FROM generate_series(1, 20) g
       RETURNING "id"::text`,
    );
    const sampler = await startActivitySampler(database.url, watchedLocks);
    let rows: BackendSample[] = [];
    const logger = memoryLogger("warn").logger;
    const workers: RunningWorker[] = [];
    let scheduler: RunningScheduler | undefined;
    const producer = Producer.fromConfig(config);
    const cache = await createCache({
      databaseUrl: config.DATABASE_URL,
      directDatabaseUrl: config.DIRECT_DATABASE_URL,
      prefix: config.QUEUE_PREFIX,
      config,
      logger,
    });
    const blocker = new pg.Client({ connectionString: database.url, application_name: "test:blocker" });
    await blocker.connect();
    try {
      scheduler = startScheduler({
        config,
        logger,
        leaseMs: 1500,
        schedules: [{ id: "routing", queue: "invoice-totals", cron: "0 0 1 1 *", payload: { all: true }, overrideVariable: "SCHEDULE_TRANSACTION_RETRY" }],
      });
      // Partitions are made for months ahead of a clock in 2031, so their CREATE has work to do.
      const services = { now: () => new Date("2031-01-15T00:00:00Z") };
      for (const queue of ["bulk-messaging", "partition-maintenance", "db-maintenance"]) {
        workers.push(await startWorker(queue, { config, logger, services }));
      }
      workers.push(await startWorker("archiving", { config, logger }));
      await scheduler.ready;
      expect(scheduler.isLeader()).toBe(true);
      const finished = async (queue: string, payload: unknown) => {
        const events = await producer.store.queueEvents(queue);
        await events.waitUntilReady();
        try {
          const job = await producer.enqueueUnknown(queue, payload);
          return await waitForJob(job, events, 60_000);
        } finally {
          await events.close();
        }
      };

      // 20 messages at 10 a second: the campaign's lock is held for about two seconds.
      const campaign = finished("bulk-messaging", {
        campaignId,
        channel: "sms",
        body: "Hello {{firstName}}",
        patientIds: patients.rows.map((row) => row.id),
        sendRatePerSecond: 10,
      });
      // Awaited below; marked handled so a failure meanwhile is reported there, not as unhandled.
      campaign.catch(() => undefined);

      // The parent's SHARE UPDATE EXCLUSIVE lock makes the job's partition DDL wait (under its 5 s lock_timeout) until it is seen.
      await blocker.query("BEGIN");
      await blocker.query("LOCK TABLE transactions IN SHARE UPDATE EXCLUSIVE MODE");
      const partitions = finished("partition-maintenance", { monthsAhead: 1 });
      partitions.catch(() => undefined);
      await sampler.waitFor("partition-maintenance's DDL waiting on the test's lock", (row) => row.waitEventType === "Lock" && isPartitionDdl(row));
      await blocker.query("COMMIT");
      expect(await partitions).toMatchObject({ created: ["transactions_2031_01", "transactions_2031_02"] });

      // An open snapshot older than the build makes REINDEX CONCURRENTLY wait (under lock_timeout) until it is seen.
      await blocker.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      await blocker.query("SELECT count(*) FROM pg_class");
      const reindex = finished("db-maintenance", { reindex: true, analyze: false, tables: ["routing_bloat"], lockTimeoutMs: 20_000 });
      reindex.catch(() => undefined);
      await sampler.waitFor("REINDEX CONCURRENTLY", (row) => /^\s*REINDEX/i.test(row.query) && row.state === "active");
      await blocker.query("COMMIT");
      const maintenance = (await reindex) as { reindexed: { index: string }[] };
      expect(maintenance.reindexed.map((entry) => entry.index).sort()).toEqual(["routing_bloat_label_idx", "routing_bloat_pkey"]);

      // An open read of the parent makes archiving's ACCESS EXCLUSIVE lock, taken before DETACH, wait (under 5 s) until it is seen.
      await blocker.query("BEGIN");
      await blocker.query("SELECT 1 FROM transactions LIMIT 1");
      const archived = finished("archiving", {});
      archived.catch(() => undefined);
      await sampler.waitFor(
        "archiving's lock before DETACH waiting on the test's read",
        (row) => row.waitEventType === "Lock" && row.applicationName === "dbjobs:archiving" && isPartitionDdl(row),
      );
      await blocker.query("COMMIT");
      expect(await archived).toMatchObject({ moved: 200, partitionsMoved: 1 });
      const archivedPartition = await admin.query("SELECT to_regclass($1) IS NOT NULL AS attached", [
        `transactions_archive_${oldMonth.toISOString().slice(0, 7).replace("-", "_")}`,
      ]);
      expect(archivedPartition.rows[0]).toEqual({ attached: true });

      expect(await campaign).toMatchObject({ sent: 20 });
    } finally {
      await blocker.end().catch(() => undefined);
      await Promise.all(workers.map((worker) => worker.close()));
      await scheduler?.close();
      await cache.close();
      await producer.close();
      rows = await sampler.stop();
    }

    // The pooled path carried the rest (Prisma queries, pool.query): otherwise this test would prove nothing.
    expect(rows.some((row) => row.usename === pooledRole)).toBe(true);
    for (const name of watchedLocks) {
      expect(roles(rows.filter((row) => row.lockNames.includes(name))), `holders of advisory lock ${name}`).toEqual([directRole]);
    }
    // BullMQ's backend takes advisory locks of its own too: any advisory lock at all.
    expect(roles(rows.filter((row) => row.advisoryLocks > 0)), "holders of any advisory lock").toEqual([directRole]);
    expect(roles(rows.filter((row) => /^\s*REINDEX/i.test(row.query))), "sessions that ran REINDEX").toEqual([directRole]);
    const ddl = rows.filter(isPartitionDdl);
    expect(roles(ddl), "sessions that ran partition DDL").toEqual([directRole]);
    const listeners = rows.filter((row) => /^\s*LISTEN/i.test(row.query));
    expect(roles(listeners), "sessions that ran LISTEN").toEqual([directRole]);
    const listenerApps = new Set(listeners.map((row) => row.applicationName));
    expect(listenerApps.has("dbjobs:control"), "the workers' control channel LISTENs").toBe(true);
    expect(listenerApps.has(cacheListenerApplicationName), "the cache's invalidation link LISTENs").toBe(true);
  });

  it("a worker refuses to start with its queues behind pgbouncer, and warns when its sessions would be; reachesThroughPooler tells the paths apart", async () => {
    const pooled = new pg.Pool({ connectionString: config.DATABASE_URL, max: 1 });
    const direct = new pg.Pool({ connectionString: database.url, max: 1 });
    try {
      expect(await reachesThroughPooler(pooled)).toBe(true);
      expect(await reachesThroughPooler(direct)).toBe(false);
    } finally {
      await Promise.all([pooled.end(), direct.end()]);
    }

    // No DIRECT_DATABASE_URL at all: the PostgreSQL queue store would go through pgbouncer, which refuses its startup options.
    const allPooled = loadConfig({ DATABASE_URL: config.DATABASE_URL, QUEUE_BACKEND: "postgres", QUEUE_PREFIX: testPrefix(), LOG_LEVEL: "warn" });
    await expect(startWorker("invoice-totals", { config: allPooled, logger: memoryLogger("fatal").logger })).rejects.toThrow(
      /QUEUE_DATABASE_URL \(or DIRECT_DATABASE_URL, else DATABASE_URL\) .*refused the queue backend's connection: "unsupported startup parameter: options".*set DIRECT_DATABASE_URL/,
    );

    // No DIRECT_DATABASE_URL, the queues named directly: the worker starts, and warns.
    const withoutDirect = loadConfig({
      DATABASE_URL: config.DATABASE_URL,
      QUEUE_BACKEND: "postgres",
      QUEUE_DATABASE_URL: database.url,
      QUEUE_PREFIX: testPrefix(),
      LOG_LEVEL: "warn",
    });
    const memory = memoryLogger("warn");
    const worker = await startWorker("invoice-totals", { config: withoutDirect, logger: memory.logger });
    try {
      const warning = await waitFor("the pooler warning", async () => memory.lines().find((line) => String(line.msg).includes("connection pooler")), 10_000);
      expect(warning).toMatchObject({ level: 40, setting: "DATABASE_URL (DIRECT_DATABASE_URL is unset)" });
      expect(String(warning.msg)).toMatch(/Set DIRECT_DATABASE_URL/);
    } finally {
      await worker.close();
    }
  });
});
