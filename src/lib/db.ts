import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "../generated/prisma/client.js";
import type { Logger } from "./logger.js";
import { metrics } from "./metrics.js";
import { handlePoolErrors } from "./pool-errors.js";

export { Prisma, PrismaClient } from "../generated/prisma/client.js";

/** A process's database handles: Prisma and a pg pool for queries and short transactions, a direct pool for session work. */
export interface Db {
  prisma: PrismaClient;
  pool: pg.Pool;
  /**
   * Connections to DIRECT_DATABASE_URL, for work that needs a session of its
   * own (withSession: advisory locks, REINDEX CONCURRENTLY, DETACH/ATTACH,
   * session settings), opened on first use. Undefined without a direct URL:
   * then `pool` serves sessions too (see `sessionPool`).
   */
  readonly directPool?: pg.Pool;
  /** Feeds the slow-query log; for wrappers of `pool` that send statements on clients of their own. */
  reportQueryTime?(durationMs: number, query: string): void;
  close(): Promise<void>;
}

export interface DbOptions {
  url: string;
  /** DIRECT_DATABASE_URL: the same database without a transaction-pooling PgBouncer in between. @defaultValue url (one pool) */
  directUrl?: string;
  /** Connections in the pool. @defaultValue 10 */
  poolSize?: number;
  /** @defaultValue 5000 */
  connectTimeoutMs?: number;
  /** Queries slower than this are logged at `slowQueryLevel` and counted. @defaultValue 100 */
  slowQueryMs?: number;
  /** `debug` for work whose statements are long by design (the demo seed), so they do not read as problems. @defaultValue "warn" */
  slowQueryLevel?: "warn" | "debug";
  logger: Logger;
  /** Sent as application_name, visible in pg_stat_activity. @defaultValue dbjobs */
  applicationName?: string;
}

export function createDb(options: DbOptions): Db {
  const slowQueryMs = options.slowQueryMs ?? 100;
  const slowQueryLevel = options.slowQueryLevel ?? "warn";
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? "dbjobs",
  });
  handlePoolErrors(pool, options.logger, "PostgreSQL");

  const prisma = new PrismaClient({
    adapter: new PrismaPg(pool),
    log: [{ emit: "event", level: "query" }],
  });
  const reportIfSlow = (durationMs: number, query: string) => {
    if (durationMs < slowQueryMs) return;
    metrics.slowQueries.inc({});
    options.logger[slowQueryLevel]({ durationMs, query: query.slice(0, 2000) }, "slow query");
  };
  prisma.$on("query", (event) => reportIfSlow(event.duration, event.query));
  timeTextQueries(pool, reportIfSlow);

  let directPool: pg.Pool | undefined;
  const openDirectPool = (url: string): pg.Pool => {
    if (directPool) return directPool;
    // Sized like the main pool: every job of a worker may hold a session at once.
    directPool = new pg.Pool({
      connectionString: url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      application_name: options.applicationName ?? "dbjobs",
    });
    handlePoolErrors(directPool, options.logger, "direct PostgreSQL");
    timeTextQueries(directPool, reportIfSlow);
    return directPool;
  };

  const directUrl = options.directUrl && options.directUrl !== options.url ? options.directUrl : undefined;
  return {
    prisma,
    pool,
    get directPool() {
      return directUrl === undefined ? undefined : openDirectPool(directUrl);
    },
    reportQueryTime: reportIfSlow,
    async close() {
      await prisma.$disconnect();
      await pool.end().catch(() => undefined);
      await directPool?.end().catch(() => undefined);
    },
  };
}

/** The pool sessions come from: the direct pool when DIRECT_DATABASE_URL is set, else the one pool. */
export function sessionPool(db: Pick<Db, "pool" | "directPool">): pg.Pool {
  return db.directPool ?? db.pool;
}

/**
 * Times the statements jobs send on the pool themselves, `pool.query(text,
 * values)`, for the same slow-query log as Prisma's. Prisma's adapter sends
 * query objects through the same method; those are left alone, as Prisma's
 * query event times them already. Values are never logged.
 */
function timeTextQueries(pool: pg.Pool, report: (durationMs: number, query: string) => void): void {
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  pool.query = ((...args: unknown[]) => {
    const [text] = args;
    if (typeof text !== "string" || typeof args[args.length - 1] === "function") return query(...args);
    const started = performance.now();
    const result = query(...args) as Promise<unknown>;
    const done = () => report(Math.round(performance.now() - started), text);
    result.then(done, done);
    return result;
  }) as typeof pool.query;
}

/** Quotes an identifier that came from the catalog or a whitelist. Never feed it user input. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
