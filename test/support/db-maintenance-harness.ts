import pg from "pg";
import type { DbMaintenanceResult } from "../../src/jobs/db-maintenance/contract.js";
import type { Config } from "../../src/lib/config.js";
import type { Db } from "../../src/lib/db.js";
import { Producer } from "../../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../../src/queues/start-worker.js";
import { waitForJob } from "../../src/queues/wait-for-job.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig, testDb } from "./test-env.js";

/**
 * A private database, a real db-maintenance worker and a producer, plus the
 * helpers the db-maintenance tests share: tables made bloated by deletes and
 * updates, and a wait for PostgreSQL's asynchronous table statistics.
 */
export interface MaintenanceHarness {
  database: TestDatabase;
  config: Config;
  db: Db;
  producer: Producer;
  logLines: () => Record<string, unknown>[];
  run(payload: object): Promise<DbMaintenanceResult>;
  /** Progress reports of the last job `run` ran, in order (BullMQ progress events). */
  lastProgress(): Record<string, unknown>[];
  /** Runs SQL on a short-lived connection of its own. */
  sql<R extends pg.QueryResultRow = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

export async function createMaintenanceHarness(): Promise<MaintenanceHarness> {
  const database = await createTestDatabase();
  const config = testConfig(database.url);
  const db = testDb(database.url);
  const producer = Producer.fromConfig(config);
  const events = await producer.store.queueEvents("db-maintenance");
  await events.waitUntilReady();
  const memory = memoryLogger("info");
  const worker: RunningWorker = await startWorker("db-maintenance", { config, logger: memory.logger, db });
  const progress = new Map<string, Record<string, unknown>[]>();
  events.on("progress", ({ jobId, data }) => {
    progress.set(jobId, [...(progress.get(jobId) ?? []), data as Record<string, unknown>]);
  });
  let lastJobId = "";

  return {
    database,
    config,
    db,
    producer,
    logLines: memory.lines,
    async run(payload) {
      const job = await producer.enqueueUnknown("db-maintenance", payload);
      lastJobId = job.id as string;
      return (await waitForJob(job, events, 240_000)) as DbMaintenanceResult;
    },
    lastProgress: () => progress.get(lastJobId) ?? [],
    async sql(text, values) {
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        return (await client.query(text, values)).rows;
      } finally {
        await client.end();
      }
    },
    async close() {
      await worker.close();
      await events.close();
      await (await producer.queue("db-maintenance")).obliterate({ force: true });
      await producer.close();
      await db.close();
      await database.drop();
    },
  };
}

/**
 * Creates `name` (id primary key, a text column with its own index) with
 * `rows` rows, autovacuum off so the test decides when statistics change,
 * then bloats its indexes the way real traffic does: rewrites every tenth row
 * and deletes the other nine tenths, and VACUUMs so the dead entries are gone
 * but the pages stay.
 */
export async function createBloatedTable(url: string, name: string, rows: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE TABLE ${name} (id int PRIMARY KEY, label text NOT NULL, n int NOT NULL DEFAULT 0) WITH (autovacuum_enabled = false)`);
    await client.query(`CREATE INDEX ${name}_label_idx ON ${name} (label)`);
    await client.query(`INSERT INTO ${name} (id, label) SELECT g, md5(g::text) FROM generate_series(1, $1) g`, [rows]);
    await client.query(`UPDATE ${name} SET label = md5(label), n = n + 1 WHERE id % 10 = 0`);
    await client.query(`DELETE FROM ${name} WHERE id % 10 <> 0`);
    await client.query(`VACUUM ${name}`);
    await client.query(`ANALYZE ${name}`);
  } finally {
    await client.end();
  }
}

/** Creates `name` with fresh, unbloated indexes. */
export async function createCleanTable(url: string, name: string, rows: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE TABLE ${name} (id int PRIMARY KEY, label text NOT NULL, n int NOT NULL DEFAULT 0) WITH (autovacuum_enabled = false)`);
    await client.query(`INSERT INTO ${name} (id, label) SELECT g, md5(g::text) FROM generate_series(1, $1) g`, [rows]);
    await client.query(`CREATE INDEX ${name}_label_idx ON ${name} (label)`);
    await client.query(`ANALYZE ${name}`);
  } finally {
    await client.end();
  }
}

/**
 * Table statistics reach pg_stat_user_tables asynchronously (PostgreSQL 15
 * flushes a backend's counters at most once a second). The writer forces its
 * flush with pg_stat_force_next_flush(); this waits until every table shows
 * at least the expected count.
 */
export async function waitForModCounts(url: string, expected: Record<string, number>, timeoutMs = 30_000): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await client.query<{ relname: string; mods: number }>(
        "SELECT relname, n_mod_since_analyze::int AS mods FROM pg_stat_user_tables WHERE relname = ANY($1)",
        [Object.keys(expected)],
      );
      const seen = Object.fromEntries(rows.map((row) => [row.relname, row.mods]));
      if (Object.entries(expected).every(([table, count]) => (seen[table] ?? 0) >= count)) return seen;
      if (Date.now() > deadline) throw new Error(`statistics did not reach ${JSON.stringify(expected)}; saw ${JSON.stringify(seen)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await client.end();
  }
}

/** Size and file of an index: a REINDEX gives it a new relfilenode; a dry run must not. */
export async function indexState(url: string, index: string): Promise<{ bytes: number; relfilenode: number; valid: boolean } | undefined> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ bytes: number; relfilenode: number; valid: boolean }>(
      `SELECT pg_relation_size(c.oid)::float8 AS bytes, c.relfilenode::int AS relfilenode, i.indisvalid AS valid
         FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
        WHERE c.relname = $1 AND c.relnamespace = 'public'::regnamespace`,
      [index],
    );
    return rows[0];
  } finally {
    await client.end();
  }
}
