import { randomUUID } from "node:crypto";
import type pg from "pg";
import { advisoryLockHolder, advisoryUnlock, lockNames, tryAdvisoryLock } from "../lib/advisory-locks.js";
import { type QueueStore, queueDatabasePool } from "../lib/queue-store.js";
import type { RedisConnection } from "../lib/redis.js";
import { type Session, withSession } from "../lib/session.js";

/**
 * Who registers the schedules: one `dbjobs scheduler` at a time, however
 * many run (BullMQ #2876, #3085, #3381: several instances upserting at once
 * double-fire or drop schedules). The scheduler sees one small interface;
 * behind it, a lease in Redis on the Redis backend, and a session-level
 * advisory lock on the PostgreSQL one.
 */
export interface LeaderLock {
  /** What the lock is, for logs. */
  readonly description: string;
  /** Takes the lock if nobody holds it: true when this process now leads. */
  acquire(): Promise<boolean>;
  /** Whether this process still leads. False once the lock was lost (lease lapsed, session gone); it is then let go. */
  stillHeld(): Promise<boolean>;
  /** The current holding's signal: aborted, with the reason, as soon as it is known lost or let go. */
  readonly signal: AbortSignal;
  /**
   * Runs `work` as the leader, keeping the lock alive meanwhile. `signal` aborts
   * once the lock is known lost, so work of several steps stops between them.
   */
  whileHeld<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** Gives the lock up at once, so a standby need not wait; later acquires fail. */
  release(): Promise<void>;
  /** Who holds it (the lease token, or the PostgreSQL backend pid), or null; for operators and tests. */
  holder(): Promise<string | null>;
}

export interface SchedulerLockOptions {
  store: QueueStore;
  /**
   * Redis: the lease, so the take-over delay after a holder dies. PostgreSQL: how
   * long the leader's self-check may take before it counts its session as lost.
   * @defaultValue 15000
   */
  leaseMs?: number;
  /** PostgreSQL: how long opening the queue database's pool may take. @defaultValue 3000 */
  connectTimeoutMs?: number;
}

/** The scheduler's lock, on the store's backend: one per Redis key prefix, one per queue database on PostgreSQL. */
export function schedulerLock(options: SchedulerLockOptions): LeaderLock {
  const { store } = options;
  if (store.redis) return leaseLeaderLock(new LeaseLock({ redis: store.redis, key: schedulerLockKey(store.prefix), leaseMs: options.leaseMs }));
  const connectTimeoutMs = options.connectTimeoutMs ?? 3000;
  return new AdvisoryLeaderLock({
    pool: () => queueDatabasePool(store, connectTimeoutMs),
    name: lockNames.scheduler(),
    checkTimeoutMs: options.leaseMs ?? 15_000,
  });
}

/**
 * A lease in Redis (the single-instance Redlock pattern): `SET key token NX PX`
 * takes it, the holder extends it while it runs, and a holder that dies stops
 * extending so the lease expires and a standby takes over. Extending and
 * releasing compare the token first, so a process whose lease already expired
 * can never extend or delete the lease a successor now holds.
 */

// KEYS[1] the lock key; ARGV[1] the holder's token, ARGV[2] the lease in ms.
// Returns 1 if the caller still held the lock and it was extended, else 0.
const extendScript = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`;

// KEYS[1] the lock key; ARGV[1] the holder's token.
// Returns 1 if the caller held the lock and it was deleted, else 0.
const releaseScript = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`;

export interface LeaseLockOptions {
  redis: RedisConnection;
  key: string;
  /** How long the lease lasts without renewal: the take-over delay after a holder dies. @defaultValue 15000 */
  leaseMs?: number;
}

export class LeaseLock {
  readonly token = randomUUID();
  readonly key: string;
  readonly leaseMs: number;
  private readonly redis: RedisConnection;

  constructor(options: LeaseLockOptions) {
    this.redis = options.redis;
    this.key = options.key;
    this.leaseMs = options.leaseMs ?? 15_000;
  }

  /** Takes the lease if nobody holds it. */
  async acquire(): Promise<boolean> {
    return (await this.redis.set(this.key, this.token, "PX", this.leaseMs, "NX")) === "OK";
  }

  /** Extends the lease; false means it was lost (expired and possibly taken by another process). */
  async extend(): Promise<boolean> {
    return Number(await this.redis.eval(extendScript, 1, this.key, this.token, String(this.leaseMs))) === 1;
  }

  /**
   * Runs `work` while extending the lease every third of it, so work that outlasts
   * the lease (a slow or loaded Redis) does not let it lapse to a standby meanwhile.
   * A lost lease calls `onLost`; an extension that fails (Redis unreachable) is left for the
   * holder's next explicit `extend()` to judge.
   */
  async keepExtended<T>(work: () => Promise<T>, onLost?: () => void): Promise<T> {
    const renew = async () => {
      // Only a definite "someone else's now" counts as lost; an unreachable Redis may still hold our lease.
      if (!(await this.extend())) onLost?.();
    };
    const keepAlive = setInterval(() => void renew().catch(() => undefined), Math.max(50, Math.floor(this.leaseMs / 3)));
    try {
      return await work();
    } finally {
      clearInterval(keepAlive);
    }
  }

  /** Gives the lease up at once so a standby need not wait for it to expire. */
  async release(): Promise<boolean> {
    return Number(await this.redis.eval(releaseScript, 1, this.key, this.token)) === 1;
  }

  /** The token of the current holder, if any. */
  async holder(): Promise<string | null> {
    return this.redis.get(this.key);
  }
}

export function schedulerLockKey(prefix: string): string {
  return `${prefix}:dbjobs:scheduler:lock`;
}

function leaseLeaderLock(lease: LeaseLock): LeaderLock {
  let lost = new AbortController();
  let released = false;
  return {
    description: `Redis lease ${lease.key} (${lease.leaseMs} ms)`,
    async acquire() {
      if (released || !(await lease.acquire())) return false;
      lost = new AbortController();
      return true;
    },
    get signal() {
      return lost.signal;
    },
    async stillHeld() {
      if (await lease.extend()) return true;
      lost.abort(new Error("the scheduler lease lapsed"));
      return false;
    },
    whileHeld(work) {
      const { signal } = lost;
      // Registering can outlast the lease (many schedules, a slow Redis): extend it meanwhile.
      return lease.keepExtended(
        () => work(signal),
        () => lost.abort(new Error("the scheduler lease lapsed")),
      );
    },
    async release() {
      released = true;
      lost.abort(new Error("the scheduler lease was released"));
      await lease.release();
    },
    holder: () => lease.holder(),
  };
}

export interface AdvisoryLeaderLockOptions {
  /** The queue database. */
  pool: () => Promise<pg.Pool>;
  /** A name from `lockNames`. */
  name: string;
  /** A self-check of the holder that takes longer counts as a lost session. @defaultValue 5000 */
  checkTimeoutMs?: number;
}

interface HeldSession {
  session: Session;
  /** This backend's pid: the holder the self-check expects. */
  pid: number;
  /** Aborted when the session is lost or the self-check fails. */
  lost: AbortController;
  /** Ends the holding: "unlock" frees the lock first; "drop" just ends the connection. */
  letGo(how: "unlock" | "drop"): void;
  /** Resolves once the connection is gone. */
  ended: Promise<void>;
}

/** Thrown inside the holding session so withSession destroys its connection rather than pool it. */
class LockSessionEnded extends Error {}

/**
 * A session-level advisory lock held on a connection of its own (withSession)
 * for as long as this process leads. PostgreSQL frees it when that session
 * ends, so a killed leader frees it at once and a standby's next
 * `pg_try_advisory_lock` wins. The leader learns that it lost the session
 * from the connection's error (a terminated backend, a failover) and from a
 * self-check on each `stillHeld()` that it, by pid, still holds the lock
 * (a connection that went silent), and then stands by.
 *
 * The connection is never handed back to the pool: ending it is the one
 * release that cannot half-fail and leave a pooled connection holding the lock.
 */
export class AdvisoryLeaderLock implements LeaderLock {
  readonly description: string;
  private held: HeldSession | undefined;
  private released = false;
  private readonly checkTimeoutMs: number;

  constructor(private readonly options: AdvisoryLeaderLockOptions) {
    this.description = `PostgreSQL advisory lock ${options.name}`;
    this.checkTimeoutMs = options.checkTimeoutMs ?? 5000;
  }

  async acquire(): Promise<boolean> {
    if (this.held) return this.stillHeld();
    if (this.released) return false;
    const pool = await this.options.pool();
    return new Promise<boolean>((resolve, reject) => {
      let answered = false;
      const answer = (acquired: boolean) => {
        answered = true;
        resolve(acquired);
      };
      let ended: () => void = () => undefined;
      const endedPromise = new Promise<void>((resolveEnded) => {
        ended = resolveEnded;
      });
      withSession(pool, async (session) => {
        if (!(await tryAdvisoryLock(session.client, this.options.name))) return answer(false);
        const { rows } = await session.client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
        const lost = new AbortController();
        const forwardLoss = () => lost.abort(session.lost.reason);
        if (session.lost.aborted) forwardLoss();
        else session.lost.addEventListener("abort", forwardLoss, { once: true });
        let letGo: (how: "unlock" | "drop") => void = () => undefined;
        const lettingGo = new Promise<"unlock" | "drop">((resolveLetGo) => {
          letGo = resolveLetGo;
        });
        const held: HeldSession = { session, pid: rows[0]?.pid ?? -1, lost, letGo, ended: endedPromise };
        // release() came while this lock was being taken: give it straight back.
        if (this.released) {
          answer(false);
          held.letGo("unlock");
        } else {
          this.held = held;
          answer(true);
        }
        const how = await Promise.race([lettingGo, aborted(lost.signal).then(() => "drop" as const)]);
        if (this.held === held) this.held = undefined;
        lost.abort(new Error(`${this.description} was let go`));
        // Unlocking frees the lock before the connection is gone; a silent connection must not hold up shutdown.
        if (how === "unlock" && !session.lost.aborted)
          await withTimeout(advisoryUnlock(session.client, this.options.name), this.checkTimeoutMs).catch(() => undefined);
        throw new LockSessionEnded();
      })
        .catch((err: unknown) => {
          // Once answered, the holding's end (even a lost session's error) is the expected way out.
          if (!answered) reject(err);
        })
        .finally(() => {
          ended();
          if (!answered) resolve(false);
        });
    });
  }

  get signal(): AbortSignal {
    return this.held?.lost.signal ?? AbortSignal.abort(new Error(`${this.description} is not held by this process`));
  }

  async stillHeld(): Promise<boolean> {
    const held = this.held;
    if (!held || held.lost.signal.aborted) return false;
    try {
      const holder = await withTimeout(advisoryLockHolder(held.session.client, this.options.name), this.checkTimeoutMs);
      if (holder === held.pid && !held.lost.signal.aborted) return true;
      held.lost.abort(new Error(`${this.description} is held by backend ${holder ?? "nobody"}, not by this session (${held.pid})`));
    } catch (err) {
      held.lost.abort(err);
    }
    held.letGo("drop");
    await held.ended;
    return false;
  }

  async whileHeld<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const held = this.held;
    if (!held) throw new Error(`${this.description} is not held by this process`);
    return work(held.lost.signal);
  }

  async release(): Promise<void> {
    this.released = true;
    const held = this.held;
    if (!held) return;
    held.letGo("unlock");
    await held.ended;
  }

  async holder(): Promise<string | null> {
    const pid = await advisoryLockHolder(await this.options.pool(), this.options.name);
    return pid === null ? null : String(pid);
  }
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from PostgreSQL within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
