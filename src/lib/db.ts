import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "../generated/prisma/client.js";
import type { Logger } from "./logger.js";
import { recordSlowQuery } from "./metrics.js";

export { Prisma, PrismaClient } from "../generated/prisma/client.js";

/** A process's database handles: Prisma for queries, the same pg pool for session work (COPY, advisory locks, REINDEX). */
export interface Db {
  prisma: PrismaClient;
  pool: pg.Pool;
  close(): Promise<void>;
}

export interface DbOptions {
  url: string;
  /** Connections in the pool. @defaultValue 10 */
  poolSize?: number;
  /** @defaultValue 5000 */
  connectTimeoutMs?: number;
  /** Queries slower than this are logged at warn and counted. @defaultValue 100 */
  slowQueryMs?: number;
  logger: Logger;
  /** Sent as application_name, visible in pg_stat_activity. @defaultValue dbjobs */
  applicationName?: string;
}

export function createDb(options: DbOptions): Db {
  const slowQueryMs = options.slowQueryMs ?? 100;
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? "dbjobs",
  });
  // An idle client that loses its server (restart, pg_terminate_backend) emits
  // here; without a listener the process would crash. The pool replaces it.
  pool.on("error", (err) => options.logger.warn({ err }, "idle PostgreSQL connection lost; the pool will reconnect"));

  const prisma = new PrismaClient({
    adapter: new PrismaPg(pool),
    log: [{ emit: "event", level: "query" }],
  });
  prisma.$on("query", (event) => {
    if (event.duration >= slowQueryMs) {
      recordSlowQuery();
      options.logger.warn({ durationMs: event.duration, query: event.query.slice(0, 2000) }, "slow query");
    }
  });

  return {
    prisma,
    pool,
    async close() {
      await prisma.$disconnect();
      await pool.end().catch(() => undefined);
    },
  };
}

/** Quotes an identifier that came from the catalog or a whitelist. Never feed it user input. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
