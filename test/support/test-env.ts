import { randomBytes, randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { Cluster, Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, inject } from "vitest";
import { type Config, loadConfig } from "../../src/lib/config.js";
import { createDb, type Db } from "../../src/lib/db.js";
import { createLogger, type Logger } from "../../src/lib/logger.js";
import { type RedisConnection, redisKeyPrefix } from "../../src/lib/redis.js";
import { withDatabase } from "./services.js";

/** A database cloned from the migrated template, private to one test file. */
export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject("postgresAdminUrl");
  const name = `dbjobs_t_${inject("runId")}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.query(`CREATE DATABASE "${name}" TEMPLATE "${inject("templateDatabase")}"`);
        break;
      } catch (err) {
        // 55006: another file is cloning the template at this instant.
        if ((err as { code?: string }).code !== "55006" || attempt >= 20) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  } finally {
    await admin.end();
  }
  return {
    name,
    url: withDatabase(adminUrl, name),
    async drop() {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A BullMQ key prefix no other test shares (BullMQ's own test-${randomUUID()}). */
export function testPrefix(): string {
  return `test-${randomUUID()}`;
}

export function testRedisUrl(): string {
  return inject("redisUrl");
}

/** The queue backend this test run exercises: TEST_QUEUE_BACKEND, else redis. */
export function testQueueBackend(): "redis" | "postgres" {
  return process.env.TEST_QUEUE_BACKEND === "postgres" ? "postgres" : "redis";
}

/** The `redis-cluster` project's cluster nodes (REDIS_CLUSTER_NODES), else undefined. */
export function testRedisClusterNodes(): string | undefined {
  return process.env.TEST_REDIS_CLUSTER ? inject("redisClusterNodes") || undefined : undefined;
}

/**
 * In the `pgbouncer` project (its global setup starts one and provides the
 * port): `url` through pgbouncer in transaction mode. Elsewhere undefined.
 */
export function pooledTestUrl(url: string): string | undefined {
  const port = inject("pgbouncerPort");
  if (!port) return undefined;
  const parsed = new URL(url);
  parsed.hostname = "127.0.0.1";
  parsed.port = String(port);
  return parsed.toString();
}

/** The URLs a process of the run under test gets: pooled DATABASE_URL and a DIRECT_DATABASE_URL in the pgbouncer project. */
function databaseSettings(databaseUrl: string): Record<string, string> {
  const pooled = pooledTestUrl(databaseUrl);
  return pooled ? { DATABASE_URL: pooled, DIRECT_DATABASE_URL: databaseUrl } : { DATABASE_URL: databaseUrl };
}

/** In the `redis-cluster` project the config names the cluster instead of REDIS_URL (loadConfig drops the blank). */
export function testConfig(databaseUrl: string, overrides: Record<string, string> = {}): Config {
  const clusterNodes = testRedisClusterNodes();
  return loadConfig({
    ...databaseSettings(databaseUrl),
    QUEUE_BACKEND: testQueueBackend(),
    ...(clusterNodes ? { REDIS_URL: "", REDIS_CLUSTER_NODES: clusterNodes } : { REDIS_URL: testRedisUrl() }),
    QUEUE_PREFIX: testPrefix(),
    LOG_LEVEL: "warn",
    ...overrides,
  });
}

/** A logger that keeps its lines in memory so tests can assert on them. */
export function memoryLogger(level = "debug"): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  const logger = createLogger({ level }, stream);
  return {
    logger,
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

/** A Db on `url`: in the pgbouncer project its pool goes through pgbouncer and its direct pool to `url`. */
export function testDb(url: string, logger: Logger = memoryLogger("warn").logger): Db {
  const pooled = pooledTestUrl(url);
  return pooled ? createDb({ url: pooled, directUrl: url, poolSize: 5, logger }) : createDb({ url, poolSize: 5, logger });
}

/**
 * For a test file that needs only its own database and a Db on it: registers
 * hooks that create both before the file's tests and close and drop them
 * after. Call it in the describe block, before the block's own hooks: vitest
 * runs a block's beforeAll hooks in order and its afterAll hooks in reverse
 * (its default `sequence.hooks: "stack"`), so those hooks can use `db` and
 * `url`, and close what they opened before the database goes. Read `db`, and
 * `url` for a config or connections of the file's own, in tests and hooks.
 */
export function useTestDb(): { readonly db: Db; readonly url: string } {
  let database: TestDatabase | undefined;
  let db: Db | undefined;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = testDb(database.url);
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });
  return {
    get db(): Db {
      if (!db) throw new Error("useTestDb: the database exists only inside the file's tests");
      return db;
    },
    get url(): string {
      if (!database) throw new Error("useTestDb: the database exists only inside the file's tests");
      return database.url;
    },
  };
}

export function testRedis(): Redis {
  return new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
}

/** testRedis, or in the `redis-cluster` project a connection to the cluster. */
export function testRedisConnection(): RedisConnection {
  const clusterNodes = testRedisClusterNodes();
  if (!clusterNodes) return testRedis();
  const nodes = clusterNodes.split(",").map((node) => ({ host: node.split(":")[0] as string, port: Number(node.split(":")[1]) }));
  return new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: null } });
}

/** The prefix of dbjobs' own keys (cache, lease, metrics) for a config: hash-tagged on a cluster, as redisKeyPrefix does. */
export function testKeyPrefix(redis: RedisConnection, config: Pick<Config, "QUEUE_PREFIX">): string {
  return redisKeyPrefix(redis, config.QUEUE_PREFIX);
}

/** The keys matching `pattern`: on a cluster from every master, as KEYS only sees the node it is sent to. */
export async function findTestKeys(redis: RedisConnection, pattern: string): Promise<string[]> {
  const nodes = redis instanceof Cluster ? redis.nodes("master") : [redis];
  return (await Promise.all(nodes.map((node) => node.keys(pattern)))).flat();
}

/** Deletes the keys matching `pattern`, one at a time (on a cluster they may be of many slots). */
export async function deleteTestKeys(redis: RedisConnection, pattern: string): Promise<void> {
  for (const key of await findTestKeys(redis, pattern)) await redis.del(key);
}
