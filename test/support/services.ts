import { Redis } from "ioredis";
import pg from "pg";

/**
 * Finds PostgreSQL and Redis for the tests (SPEC §1): TEST_DATABASE_URL /
 * TEST_REDIS_URL when set, else the services on 127.0.0.1 when they answer,
 * else throwaway containers from testcontainers.
 */
export interface TestServices {
  /** A URL to the server's `postgres` database, used to create and drop test databases. */
  postgresAdminUrl: string;
  redisUrl: string;
  stop(): Promise<void>;
}

const localPostgres = "postgresql://postgres@127.0.0.1:5432/postgres";
const localRedis = "redis://127.0.0.1:6379";

/** Whether a PostgreSQL server answers `SELECT 1` at `url` within `timeoutMs`. */
export async function postgresAnswers(url: string, timeoutMs = 2000): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function redisAnswers(url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    return (await redis.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export async function resolveTestServices(env: NodeJS.ProcessEnv = process.env): Promise<TestServices> {
  const stops: (() => Promise<unknown>)[] = [];
  let postgresAdminUrl: string;
  if (env.TEST_DATABASE_URL) postgresAdminUrl = withDatabase(env.TEST_DATABASE_URL, "postgres");
  else if (await postgresAnswers(localPostgres)) postgresAdminUrl = localPostgres;
  else {
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
    const container = await new PostgreSqlContainer("postgres:16-alpine").withDatabase("postgres").start();
    stops.push(() => container.stop());
    postgresAdminUrl = withDatabase(container.getConnectionUri(), "postgres");
  }

  let redisUrl: string;
  if (env.TEST_REDIS_URL) redisUrl = env.TEST_REDIS_URL;
  else if (await redisAnswers(localRedis)) redisUrl = localRedis;
  else {
    const { RedisContainer } = await import("@testcontainers/redis");
    const container = await new RedisContainer("redis:7-alpine").start();
    stops.push(() => container.stop());
    redisUrl = container.getConnectionUrl();
  }

  return {
    postgresAdminUrl,
    redisUrl,
    async stop() {
      await Promise.all(stops.map((stop) => stop()));
    },
  };
}

export { withDatabase };
