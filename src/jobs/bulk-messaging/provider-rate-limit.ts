import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { RateLimiterPostgres, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import type { RedisConnection } from "../../lib/redis.js";

/**
 * The messaging provider's rate limit, shared by every bulk-messaging worker
 * process: MESSAGING_RATE_PER_SECOND sends per second, with at most
 * MESSAGING_RATE_BURST more in any one second. The counters live in the queue
 * backend in use, through rate-limiter-flexible: RateLimiterRedis on Redis,
 * RateLimiterPostgres (table dbjobs.messaging_rate_limit) on PostgreSQL.
 *
 * Why slots, not one limiter of `rate` points per second: the library's
 * windows are fixed, so a second straddling two windows can see the end of one
 * and the start of the next, up to twice the rate. Here each second is cut
 * into n slots (on the workers' clocks), each a key of its own holding a
 * share of the rate of at most half the burst; the shares of any n slots in a
 * row add up to the rate. Any one-second span then meets at most n + 1 slots:
 * the rate plus half the burst. The other half covers a send that reaches
 * the provider up to one slot after its token was taken; a token the store
 * grants only after its slot has ended is not used. Keys are reused
 * every 2n slots (a slot's key has long expired by then), so the store holds
 * at most 2n counters.
 */
export interface ProviderRateLimit {
  readonly ratePerSecond: number;
  readonly burst: number;
  /** Waits until this process may make one provider call. */
  take(): Promise<void>;
}

export type RateLimitStore = { kind: "redis"; redis: RedisConnection } | { kind: "postgres"; pool: pg.Pool };

export interface ProviderRateLimitOptions {
  ratePerSecond: number;
  /** At least 2; see `slotsPerSecond`. */
  burst: number;
  /** Resolved on the first `take()`, when the worker's queue store is open. */
  store: () => Promise<RateLimitStore>;
  /** Keeps limits of different deployments (queue prefixes) apart in one store. */
  keyPrefix: string;
}

/** Slots per second: each slot's share is at most half the burst. */
export function slotsPerSecond(ratePerSecond: number, burst: number): number {
  return Math.ceil(ratePerSecond / Math.floor(burst / 2));
}

export function createProviderRateLimit(options: ProviderRateLimitOptions): ProviderRateLimit {
  const { ratePerSecond, burst } = options;
  const slots = slotsPerSecond(ratePerSecond, burst);
  const slotMs = 1000 / slots;
  // Slot r of each second gets floor((r+1)·rate/n) − floor(r·rate/n): any n slots in a row sum to the rate.
  const share = (slot: number) => {
    const r = slot % slots;
    return Math.floor(((r + 1) * ratePerSecond) / slots) - Math.floor((r * ratePerSecond) / slots);
  };
  let limiter: Promise<RateLimiterRedis | RateLimiterPostgres> | undefined;
  const build = async () => {
    const store = await options.store();
    const common = { keyPrefix: options.keyPrefix, points: Math.ceil(ratePerSecond / slots), duration: 1 };
    return store.kind === "redis"
      ? new RateLimiterRedis({ ...common, storeClient: store.redis })
      : new RateLimiterPostgres({
          ...common,
          storeClient: store.pool,
          schemaName: "dbjobs",
          tableName: "messaging_rate_limit",
          tableCreated: true,
          clearExpiredByTimeout: false,
        });
  };

  /** One token; the store decides across processes. */
  const takeOne = async (): Promise<void> => {
    limiter ??= build();
    const store = await limiter;
    for (;;) {
      const now = Date.now();
      const slot = Math.floor(now / slotMs);
      const allowed = share(slot);
      if (allowed > 0) {
        const consumed = await store.consume(String(slot % (2 * slots))).then(
          (res) => res.consumedPoints,
          (rejection: unknown) => {
            if (rejection instanceof RateLimiterRes) return Number.POSITIVE_INFINITY;
            throw rejection;
          },
        );
        // A token whose answer came back after its slot ended is dropped: sent
        // now, it would add to a later slot's share (a store answering slowly
        // under load let several slots' sends through at once).
        if (consumed <= allowed && Math.floor(Date.now() / slotMs) === slot) return;
      }
      await sleep(Math.max(1, (slot + 1) * slotMs - Date.now()));
    }
  };

  // One taker at a time per process: the others wait here, not in the store,
  // so a full slot costs each process one rejected call, not one per sender.
  let queue: Promise<void> = Promise.resolve();
  return {
    ratePerSecond,
    burst,
    take() {
      const turn = queue.then(takeOne);
      queue = turn.catch(() => undefined);
      return turn;
    },
  };
}
