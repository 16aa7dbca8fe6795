import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";

/**
 * Every PostgreSQL advisory lock dbjobs takes. One key scheme for all of
 * them, the 64-bit `hashtextextended(name, 0)` of a readable name, and every
 * name in the list below, so two features can never collide in the key space
 * by accident and `pg_locks` can be read back against this list.
 *
 * Locks are session-level: held on one connection (see session.ts) for the
 * whole of a run, and released by `pg_advisory_unlock` or when that
 * connection ends, so a killed worker never leaves one held.
 */
export const lockNames = {
  /** `dbjobs migrate`: one migrator at a time. */
  migrate: () => "dbjobs:migrate",
  /** partition-maintenance, per partitioned table. */
  partitionMaintenance: (table: string) => `dbjobs:partition-maintenance:${table}`,
  /** archiving, per source table. */
  archiving: (table: string) => `dbjobs:archiving:${table}`,
  /** db-maintenance: one run at a time on a database. */
  dbMaintenance: () => "dbjobs:db-maintenance",
  /** bulk-messaging: one job at a time per campaign and channel. */
  campaign: (channel: string, campaignId: string) => `dbjobs:bulk-messaging:${channel}:${campaignId}`,
  /** bulk-messaging: slot `slot` of a tenant's MESSAGING_TENANT_CONCURRENCY (JSON keeps any tenant name from reading as another's). */
  tenantSlot: (tenantId: string, slot: number) => `dbjobs:bulk-messaging:tenant-slot:${JSON.stringify(tenantId)}:${slot}`,
  /** `dbjobs scheduler` on the PostgreSQL queue backend: the one process that registers schedules, per queue database. */
  scheduler: () => "dbjobs:scheduler",
} as const;

type Queryable = Pick<pg.ClientBase, "query">;

// Takes $1 the lock name. Returns whether the lock was free and is now held by this session.
const tryLockSql = "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS acquired";
// Takes $1 the lock name. Waits until this session holds it.
const lockSql = "SELECT pg_advisory_lock(hashtextextended($1, 0))";
// Takes $1 the lock name. Returns whether this session held it.
const unlockSql = "SELECT pg_advisory_unlock(hashtextextended($1, 0)) AS released";

// Takes $1 the lock name. Returns the pid of the session of this database holding it (no row when free).
// pg_locks shows a bigint key as its high half in classid and its low half in objid, with objsubid 1.
const holderSql = `
SELECT pid FROM pg_locks
 WHERE locktype = 'advisory' AND granted AND objsubid = 1
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND classid = ((hashtextextended($1, 0) >> 32) & 4294967295)::oid
   AND objid = (hashtextextended($1, 0) & 4294967295)::oid`;

export async function tryAdvisoryLock(client: Queryable, name: string): Promise<boolean> {
  const { rows } = await client.query<{ acquired: boolean }>(tryLockSql, [name]);
  return rows[0]?.acquired === true;
}

/** Blocks in PostgreSQL until the lock is held; for short waits such as migrations. */
export async function advisoryLock(client: Queryable, name: string): Promise<void> {
  await client.query(lockSql, [name]);
}

/** A failed unlock (a lost connection) is harmless: the lock ends with the session. */
export async function advisoryUnlock(client: Queryable, name: string): Promise<void> {
  await client.query(unlockSql, [name]).catch(() => undefined);
}

/** The backend pid of the session holding the lock, or null when nobody does; for operators, tests and a holder's self-check. */
export async function advisoryLockHolder(client: Queryable, name: string): Promise<number | null> {
  const { rows } = await client.query<{ pid: number }>(holderSql, [name]);
  return rows[0]?.pid ?? null;
}

export type AdvisoryLockOutcome<T> = { acquired: true; value: T } | { acquired: false };

/** Runs `work` holding the lock; when another session holds it, returns `{ acquired: false }` at once. */
export async function withTryAdvisoryLock<T>(client: Queryable, name: string, work: () => Promise<T>): Promise<AdvisoryLockOutcome<T>> {
  if (!(await tryAdvisoryLock(client, name))) return { acquired: false };
  try {
    return { acquired: true, value: await work() };
  } finally {
    await advisoryUnlock(client, name);
  }
}

export interface WaitOptions {
  /** Between attempts. @defaultValue 500 */
  pollMs?: number;
  /** Called before each wait, with how many waits came before; e.g. to log now and then. */
  onWait?(waits: number): void;
  /** Stops waiting: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Runs `work` holding the lock, waiting for it as long as it takes. It polls
 * rather than blocking in `pg_advisory_lock`, so the wait can be logged and
 * aborted, and the connection is not stuck in a statement while it waits.
 */
export async function withAdvisoryLock<T>(client: Queryable, name: string, work: () => Promise<T>, options: WaitOptions = {}): Promise<T> {
  for (let waits = 0; !(await tryAdvisoryLock(client, name)); waits++) {
    options.onWait?.(waits);
    await sleep(options.pollMs ?? 500, undefined, { signal: options.signal });
  }
  try {
    return await work();
  } finally {
    await advisoryUnlock(client, name);
  }
}
