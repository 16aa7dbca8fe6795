import { cacheKeys } from "./cache-keys.js";
import type { Db, Prisma } from "./db.js";

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

/** The balances of the `limit` most recently changed ACTIVE escrow accounts, keyed for the cache. One statement. */
export async function readActiveEscrowBalances(db: Db, limit: number): Promise<{ key: string; value: EscrowBalance }[]> {
  const rows = await db.prisma.escrowAccount.findMany({
    where: { status: "ACTIVE" },
    select: escrowBalanceSelect,
    orderBy: [{ updatedAt: "desc" }, { id: "asc" }],
    take: limit,
  });
  return rows.map((row) => ({ key: cacheKeys.escrowBalance(row.id), value: row }));
}

/** The `limit` most recently active users, keyed for the cache. One statement. */
export async function readRecentlyActiveUsers(db: Db, limit: number): Promise<{ key: string; value: CachedUser }[]> {
  const rows = await db.prisma.user.findMany({
    where: { lastActiveAt: { not: null } },
    select: userSelect,
    orderBy: [{ lastActiveAt: "desc" }, { id: "asc" }],
    take: limit,
  });
  return rows.map((row) => ({ key: cacheKeys.user(row.id), value: row }));
}
