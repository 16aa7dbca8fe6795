import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";

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
  redis: Redis;
  key: string;
  /** How long the lease lasts without renewal: the take-over delay after a holder dies. @defaultValue 15000 */
  leaseMs?: number;
}

export class LeaseLock {
  readonly token = randomUUID();
  readonly key: string;
  readonly leaseMs: number;
  private readonly redis: Redis;

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
   * A failed extension is left for the holder's next explicit `extend()` to notice.
   */
  async keepExtended<T>(work: () => Promise<T>): Promise<T> {
    const keepAlive = setInterval(() => void this.extend().catch(() => undefined), Math.max(50, Math.floor(this.leaseMs / 3)));
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
