import { randomUUID } from "node:crypto";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "../src/lib/db.js";
import { migrate } from "../src/lib/migrate.js";

/** Bench services: BENCH_DATABASE_URL's server (default local) and BENCH_REDIS_URL (default local). */
export const benchPostgresAdminUrl = process.env.BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
export const benchRedisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";

/** Drops and recreates database `dbjobs_bench_<name>`, migrated; returns its URL. */
export async function freshBenchDatabase(name: string): Promise<string> {
  const database = `dbjobs_bench_${name.replace(/[^a-z0-9_]/gi, "_")}`;
  const admin = new pg.Client({ connectionString: benchPostgresAdminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  await admin.end();
  const url = new URL(benchPostgresAdminUrl);
  url.pathname = `/${database}`;
  await migrate({ url: url.toString() });
  return url.toString();
}

export function benchPrefix(): string {
  return `bench-${randomUUID()}`;
}

/** The middle value; for an even count, the mean of the two middle values. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 ? (sorted[Math.floor(middle)] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Runs `work` and returns elapsed milliseconds. */
export async function timeMs(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

/**
 * A Prisma client as an application builds one (the driver adapter, no query
 * logging), for the seed loops the jobs are compared against. The project's own
 * client (createDb) listens to every query for its slow-query log, which cost
 * seed 004's messaging loop 4% on average side by side (five warm pairs of 200
 * recipients, −1% to +8%): a handicap the baseline should not carry. Close it
 * with `$disconnect()`.
 */
export function applicationPrisma(url: string): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: 4 }) });
}
