import { cacheKeys } from "../../cache/cache-keys.js";
import type { Db, Prisma } from "../../lib/db.js";
import { withSession } from "../../lib/session.js";

/**
 * The entities worth caching (seeds 000 and 001) and how they are read, in
 * one place so a reader's loader and the prefetch store the same shape under
 * the same key. Single-key loaders serve `cache.getOrLoad`; the set-based
 * readers serve the prefetch, one statement per kind however many keys.
 */
export interface EscrowBalance {
  id: string;
  currentBalance: Prisma.Decimal;
  availableBalance: Prisma.Decimal;
  pendingBalance: Prisma.Decimal;
  heldBalance: Prisma.Decimal;
  version: number;
  updatedAt: Date;
}

export interface CachedUser {
  id: string;
  email: string;
  name: string | null;
  lastActiveAt: Date | null;
  updatedAt: Date;
}

export interface GlobalCounts {
  users: bigint;
  activeEscrowAccounts: bigint;
  pendingTransactions: bigint;
  countedAt: Date;
}

const escrowBalanceSelect = {
  id: true,
  currentBalance: true,
  availableBalance: true,
  pendingBalance: true,
  heldBalance: true,
  version: true,
  updatedAt: true,
} as const;

const userSelect = { id: true, email: true, name: true, lastActiveAt: true, updatedAt: true } as const;

export function loadEscrowBalance(db: Db, escrowAccountId: string): Promise<EscrowBalance | null> {
  return db.prisma.escrowAccount.findUnique({ where: { id: escrowAccountId }, select: escrowBalanceSelect });
}

export function loadUser(db: Db, userId: string): Promise<CachedUser | null> {
  return db.prisma.user.findUnique({ where: { id: userId }, select: userSelect });
}

// Takes nothing. Returns one row of counts (bigint) for the dashboard-style
// totals of seed 001 §Count Caching; each count uses an index (status, or the
// users primary key).
const globalCountsSql = `
SELECT (SELECT count(*) FROM "users") AS "users",
       (SELECT count(*) FROM "escrow_accounts" WHERE "status" = 'ACTIVE') AS "activeEscrowAccounts",
       (SELECT count(*) FROM "transactions" WHERE "status" IN ('PENDING', 'RETRYING')) AS "pendingTransactions",
       now() AS "countedAt"`;

export async function loadGlobalCounts(db: Db): Promise<GlobalCounts> {
  const [row] = await db.prisma.$queryRawUnsafe<GlobalCounts[]>(globalCountsSql);
  if (!row) throw new Error("global counts query returned no row");
  return row;
}

/*
 * The prefetch's set-based readers build each value's wire format
 * (cache-serializer.ts: {"v": value} with Decimal and Date tagged) in SQL, so
 * 10k rows cost one statement and no per-row work in Node. Plain string
 * concatenation is used because it is about 5× cheaper than json_build_object.
 * It is safe because every piece is either a uuid, a number, or a value
 * escaped by to_json. Dates travel as epoch milliseconds, which the
 * serializer accepts as well as ISO strings. The shapes match EscrowBalance
 * and CachedUser field for field; test/cache-prefetch.write-race.test.ts
 * checks that a prefetched value equals what the single-key loader returns.
 */
const decimalJson = (column: string) => `'{"$t":"Decimal","v":"' || ${column}::text || '"}'`;
const dateJson = (column: string) => `coalesce('{"$t":"Date","v":' || (extract(epoch from ${column}) * 1000)::bigint || '}', 'null')`;
const stringJson = (column: string) => `coalesce(to_json(${column})::text, 'null')`;

// Takes $1 the row limit. Returns (id, text): the `limit` most recently changed
// ACTIVE escrow accounts, each as a serialized EscrowBalance.
const activeEscrowBalancesSql = `
SELECT a."id"::text AS id,
       '{"v":{"id":"' || a."id"::text
       || '","currentBalance":' || ${decimalJson('a."currentBalance"')}
       || ',"availableBalance":' || ${decimalJson('a."availableBalance"')}
       || ',"pendingBalance":' || ${decimalJson('a."pendingBalance"')}
       || ',"heldBalance":' || ${decimalJson('a."heldBalance"')}
       || ',"version":' || a."version"::text
       || ',"updatedAt":' || ${dateJson('a."updatedAt"')} || '}}' AS text
  FROM "escrow_accounts" a
 WHERE a."status" = 'ACTIVE'
 ORDER BY a."updatedAt" DESC, a."id"
 LIMIT $1`;

// Takes $1 the row limit. Returns (id, text): the `limit` most recently active
// users (lastActiveAt set), each as a serialized CachedUser.
const recentlyActiveUsersSql = `
SELECT u."id"::text AS id,
       '{"v":{"id":"' || u."id"::text
       || '","email":' || ${stringJson('u."email"')}
       || ',"name":' || ${stringJson('u."name"')}
       || ',"lastActiveAt":' || ${dateJson('u."lastActiveAt"')}
       || ',"updatedAt":' || ${dateJson('u."updatedAt"')} || '}}' AS text
  FROM "users" u
 WHERE u."lastActiveAt" IS NOT NULL
 ORDER BY u."lastActiveAt" DESC, u."id"
 LIMIT $1`;

export interface SerializedEntry {
  key: string;
  /** The value in the cache's wire format. */
  text: string;
}

/**
 * Runs `sql` (which returns `id` and `text`) as one cursor in a read-only
 * transaction and hands the rows over `chunkSize` at a time. The next chunk is
 * fetched while the previous one is being written, so the database read and
 * the Redis writes overlap. This is one statement, however many chunks.
 */
async function streamSerialized(
  db: Db,
  sql: string,
  limit: number,
  toKey: (id: string) => string,
  chunkSize: number,
  onChunk: (entries: SerializedEntry[]) => Promise<void>,
): Promise<void> {
  // withSession: a connection killed mid-read fails this job (retryably) instead of the worker, and is destroyed, not reused.
  // On db.pool, not the direct pool: a cursor inside one transaction needs no session, so it may go through PgBouncer.
  await withSession(db.pool, async ({ client }) => {
    await client.query("BEGIN READ ONLY");
    await client.query(`DECLARE dbjobs_cache_prefetch NO SCROLL CURSOR FOR ${sql}`, [limit]);
    let writing: Promise<void> = Promise.resolve();
    for (;;) {
      const { rows } = await client.query<{ id: string; text: string }>(`FETCH ${chunkSize} FROM dbjobs_cache_prefetch`);
      await writing;
      if (rows.length === 0) break;
      writing = onChunk(rows.map((row) => ({ key: toKey(row.id), text: row.text })));
      // Awaited on the next turn; marked handled now so a failure in between is not reported as unhandled.
      writing.catch(() => undefined);
    }
    await client.query("COMMIT");
  });
}

/** Hands over the balances of the `limit` most recently changed ACTIVE escrow accounts, serialized and keyed for the cache, a chunk at a time. */
export function streamActiveEscrowBalances(db: Db, limit: number, chunkSize: number, onChunk: (entries: SerializedEntry[]) => Promise<void>): Promise<void> {
  return streamSerialized(db, activeEscrowBalancesSql, limit, cacheKeys.escrowBalance, chunkSize, onChunk);
}

/** Hands over the `limit` most recently active users, serialized and keyed for the cache, a chunk at a time. */
export function streamRecentlyActiveUsers(db: Db, limit: number, chunkSize: number, onChunk: (entries: SerializedEntry[]) => Promise<void>): Promise<void> {
  return streamSerialized(db, recentlyActiveUsersSql, limit, cacheKeys.user, chunkSize, onChunk);
}

/*
 * Without a shared tier (no Redis) there is nowhere to store the hot set for
 * other processes, and a process's own memory is filled by its own reads. What
 * every process does share is PostgreSQL: these statements read the hot rows
 * one by one through their primary key, the path the single-key loaders
 * above take, so the index and heap pages those loaders will read are in
 * PostgreSQL's buffer cache. OFFSET 0 keeps each lateral subquery from being
 * flattened into a join the planner could answer with a sequential scan,
 * which on a large table does not stay in the buffer cache.
 */

// Takes $1 the row limit. Returns one row, read: how many of the `limit` most
// recently changed ACTIVE escrow accounts were read through escrow_accounts_pkey.
const readHotEscrowBalancesSql = `
WITH hot AS (
  SELECT "id" FROM "escrow_accounts" WHERE "status" = 'ACTIVE' ORDER BY "updatedAt" DESC, "id" LIMIT $1
)
SELECT count(a."version")::int AS read
  FROM hot CROSS JOIN LATERAL (
    SELECT e."currentBalance", e."availableBalance", e."pendingBalance", e."heldBalance", e."version", e."updatedAt"
      FROM "escrow_accounts" e WHERE e."id" = hot."id" OFFSET 0
  ) a`;

// Takes $1 the row limit. Returns one row, read: how many of the `limit` most
// recently active users were read through users_pkey.
const readHotUsersSql = `
WITH hot AS (
  SELECT "id" FROM "users" WHERE "lastActiveAt" IS NOT NULL ORDER BY "lastActiveAt" DESC, "id" LIMIT $1
)
SELECT count(u."updatedAt")::int AS read
  FROM hot CROSS JOIN LATERAL (
    SELECT x."email", x."name", x."lastActiveAt", x."updatedAt" FROM "users" x WHERE x."id" = hot."id" OFFSET 0
  ) u`;

async function readThroughPrimaryKey(db: Db, sql: string, limit: number): Promise<number> {
  const { rows } = await db.pool.query<{ read: number }>(sql, [limit]);
  return rows[0]?.read ?? 0;
}

/** Reads the balances of the `limit` most recently changed ACTIVE escrow accounts as loadEscrowBalance does; returns how many. */
export function readHotEscrowBalances(db: Db, limit: number): Promise<number> {
  return readThroughPrimaryKey(db, readHotEscrowBalancesSql, limit);
}

/** Reads the `limit` most recently active users as loadUser does; returns how many. */
export function readHotUsers(db: Db, limit: number): Promise<number> {
  return readThroughPrimaryKey(db, readHotUsersSql, limit);
}
