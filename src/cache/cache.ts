import { Redis, type RedisOptions } from "ioredis";
import { LRUCache } from "lru-cache";
import type { Config } from "../lib/config.js";
import type { Logger } from "../lib/logger.js";
import { redactUrl } from "../lib/logger.js";
import { flushMetrics, redisMetricsStore } from "../lib/metrics.js";
import { invalidateCacheKeys, invalidationChannel } from "./cache-invalidation.js";
import { readWithSequence, storeIfNotInvalidated } from "./cache-redis-tier.js";
import { deserializeCacheValue } from "./cache-serializer.js";
import { CacheCounters, type CacheKind, type CacheStatsSnapshot } from "./cache-stats.js";

export { type CacheKind, type CacheKindStats, type CacheStatsSnapshot, cacheKinds, readCacheStats } from "./cache-stats.js";

/**
 * The two-tier cache: an in-process LRU (L1) in front of Redis (L2).
 *
 * - Reads: L1, then L2, then the loader; concurrent misses on one key in one
 *   process share one load (stampede protection).
 * - Writes to L2 are compare-and-set against the invalidation sequence read
 *   with the miss, so a value read from the database before a write can never
 *   land in Redis after that write's invalidation (see cache-scripts.ts).
 * - Invalidation deletes from Redis and publishes the keys; every cache
 *   subscribes and drops them from its L1. Jobs invalidate through
 *   `ctx.invalidateCache`, which runs the same script.
 * - Redis down: answered from L1 and the loader, one warning per outage, and
 *   L1 is cleared when the invalidation channel comes back (messages sent
 *   while it was away are lost). Invalidations made meanwhile are replayed.
 *
 * Values held in L1 are shared between callers: treat them as read-only.
 */
export interface CacheOptions {
  /** A Redis URL, or a connection whose options are copied; the cache always opens its own two connections. */
  redis: string | Redis;
  /** Key prefix, normally config.QUEUE_PREFIX; keys live at `<prefix>:cache:<key>`. */
  prefix: string;
  config: Pick<Config, "CACHE_TTL_REFERENCE_MS" | "CACHE_TTL_BALANCE_MS" | "CACHE_TTL_AGGREGATE_MS" | "CACHE_L1_MAX_ENTRIES">;
  logger: Logger;
  /** How long one Redis command may take before the read is answered from the loader instead. @defaultValue 1000 */
  redisTimeoutMs?: number;
  /** How often counters are flushed to the metrics hash in Redis. @defaultValue 5000 */
  metricsFlushMs?: number;
  /** How long `createCache` waits for Redis before starting degraded. @defaultValue 5000 */
  connectTimeoutMs?: number;
  /** Called after an invalidation message from any process has dropped keys from this process's memory (tests, benchmarks, tracing). */
  onInvalidation?(keys: string[]): void;
}

export interface GetOrLoadOptions {
  kind: CacheKind;
  /** Overrides the kind's TTL from config. */
  ttlMs?: number;
}

export interface CacheStats extends CacheStatsSnapshot {
  l1: { entries: number; maxEntries: number };
  l2: { available: boolean };
}

interface Flight {
  promise: Promise<{ value: unknown; source: "l2" | "load" }>;
  /** Set when an invalidation for the key arrives mid-flight: the result must not enter L1. */
  invalidated: boolean;
}

/** Invalidations kept for replay while Redis is down; beyond this, TTLs bound staleness. */
const maxPendingInvalidations = 100_000;

export class TwoTierCache {
  private readonly l1: LRUCache<string, { value: unknown }>;
  private readonly inflight = new Map<string, Flight>();
  private readonly counters = new CacheCounters();
  private readonly pendingInvalidations = new Set<string>();
  private readonly flushTimer: NodeJS.Timeout;
  private l2Down = false;
  private subscriberLost = false;
  private closed = false;

  constructor(
    private readonly options: CacheOptions,
    private readonly redis: Redis,
    private readonly subscriber: Redis,
  ) {
    const { config } = options;
    this.l1 = new LRUCache({
      max: config.CACHE_L1_MAX_ENTRIES,
      ttl: Math.max(config.CACHE_TTL_REFERENCE_MS, config.CACHE_TTL_BALANCE_MS, config.CACHE_TTL_AGGREGATE_MS),
    });
    const log = options.logger;

    // ── Listeners below must never throw. ──
    redis.on("error", (err: Error) => this.l2Failed(err));
    redis.on("close", () => this.l2Failed(new Error("connection to Redis closed")));
    redis.on("ready", () => {
      this.l2Recovered();
      void this.replayInvalidations();
    });
    subscriber.on("error", (err: Error) => log.debug({ err: err.message }, "cache invalidation subscriber error; reconnecting"));
    subscriber.on("close", () => {
      this.subscriberLost = true;
    });
    subscriber.on("ready", () => {
      if (!this.subscriberLost) return;
      this.subscriberLost = false;
      // Subscribed again here rather than by ioredis's autoResubscribe, which
      // leaves its SUBSCRIBE's promise unhandled: a close before the reply (a
      // shutdown, or Redis going down again) made it an unhandled rejection,
      // and by default that ends a Node process.
      subscriber
        .subscribe(invalidationChannel(options.prefix))
        .catch((err: Error) => log.debug({ err: err.message }, "cache invalidation resubscribe failed; retrying on reconnect"));
      // Invalidations published while we were away never reached us.
      this.l1.clear();
      log.info("cache invalidation channel back; in-memory tier cleared");
    });
    subscriber.on("message", (_channel: string, message: string) => {
      let keys: string[];
      try {
        keys = JSON.parse(message) as string[];
        this.dropFromMemory(keys);
      } catch (err) {
        log.warn({ err }, "ignored a malformed cache invalidation message");
        return;
      }
      try {
        options.onInvalidation?.(keys);
      } catch (err) {
        log.warn({ err }, "onInvalidation listener threw");
      }
    });

    this.flushTimer = setInterval(() => void this.flushMetrics(), options.metricsFlushMs ?? 5000);
    this.flushTimer.unref();
  }

  /** The TTL of a kind of data, from config. */
  ttlFor(kind: CacheKind): number {
    const { config } = this.options;
    if (kind === "balance") return config.CACHE_TTL_BALANCE_MS;
    if (kind === "aggregate") return config.CACHE_TTL_AGGREGATE_MS;
    return config.CACHE_TTL_REFERENCE_MS;
  }

  /** The cached value of `key`, or the loader's (which is then cached). A loader result of `undefined` is returned but not cached. */
  async getOrLoad<T>(key: string, loader: () => Promise<T>, options: GetOrLoadOptions): Promise<T> {
    const { kind } = options;
    const inMemory = this.l1.get(key);
    if (inMemory) {
      this.counters.hit("l1", kind);
      return inMemory.value as T;
    }
    let flight = this.inflight.get(key);
    if (!flight) {
      const created: Flight = { invalidated: false, promise: Promise.resolve({ value: undefined, source: "load" }) };
      created.promise = this.fill(key, loader, kind, options.ttlMs ?? this.ttlFor(kind), created).finally(() => {
        if (this.inflight.get(key) === created) this.inflight.delete(key);
      });
      this.inflight.set(key, created);
      flight = created;
    }
    const outcome = await flight.promise;
    if (outcome.source === "l2") this.counters.hit("l2", kind);
    else this.counters.miss(kind);
    return outcome.value as T;
  }

  /** Removes the keys from this process's memory, from Redis and (through the channel) from every other process's memory. */
  async invalidate(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    this.dropFromMemory(keys);
    if (!this.l2Usable()) {
      this.rememberInvalidations(keys);
      return;
    }
    try {
      await invalidateCacheKeys(this.redis, this.options.prefix, keys);
      this.l2Recovered();
    } catch (err) {
      this.l2Failed(err);
      this.rememberInvalidations(keys);
    }
  }

  stats(): CacheStats {
    return {
      ...this.counters.snapshot(),
      l1: { entries: this.l1.size, maxEntries: this.options.config.CACHE_L1_MAX_ENTRIES },
      l2: { available: this.l2Usable() },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.flushTimer);
    await this.flushMetrics();
    this.subscriber.disconnect();
    this.redis.disconnect();
    this.l1.clear();
  }

  private async fill(key: string, loader: () => Promise<unknown>, kind: CacheKind, ttlMs: number, flight: Flight) {
    let sequence: number | undefined;
    if (this.l2Usable()) {
      try {
        const read = await readWithSequence(this.redis, this.options.prefix, key);
        this.l2Recovered();
        if (read.text !== null) {
          const value = deserializeCacheValue(read.text);
          if (!flight.invalidated) this.l1.set(key, { value }, { ttl: read.ttlMs > 0 ? Math.min(read.ttlMs, ttlMs) : ttlMs });
          return { value, source: "l2" as const };
        }
        sequence = read.sequence;
      } catch (err) {
        this.l2Failed(err);
      }
    }
    this.counters.load(kind);
    const value = await loader();
    if (value === undefined) return { value, source: "load" as const };
    let current = true;
    if (sequence !== undefined) {
      try {
        // 0 stored: a write invalidated the key while we loaded, so what we hold is already old.
        current = (await storeIfNotInvalidated(this.redis, this.options.prefix, [{ key, value }], sequence, ttlMs)) === 1;
      } catch (err) {
        this.l2Failed(err);
      }
    }
    if (current && !flight.invalidated) this.l1.set(key, { value }, { ttl: ttlMs });
    return { value, source: "load" as const };
  }

  private dropFromMemory(keys: string[]): void {
    for (const key of keys) {
      this.l1.delete(key);
      const flight = this.inflight.get(key);
      if (flight) flight.invalidated = true;
    }
  }

  private l2Usable(): boolean {
    return !this.closed && this.redis.status === "ready";
  }

  /** @internal Logs the first Redis failure of an outage; later ones are silent until it recovers. */
  l2Failed(err: unknown): void {
    if (this.l2Down || this.closed) return;
    this.l2Down = true;
    this.options.logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      "Redis cache tier unavailable; answering from memory and the database until it returns",
    );
  }

  private l2Recovered(): void {
    if (!this.l2Down) return;
    this.l2Down = false;
    this.options.logger.info("Redis cache tier available again");
  }

  private rememberInvalidations(keys: string[]): void {
    for (const key of keys) {
      if (this.pendingInvalidations.size >= maxPendingInvalidations) return;
      this.pendingInvalidations.add(key);
    }
  }

  private async replayInvalidations(): Promise<void> {
    if (this.pendingInvalidations.size === 0) return;
    const keys = [...this.pendingInvalidations];
    this.pendingInvalidations.clear();
    try {
      await invalidateCacheKeys(this.redis, this.options.prefix, keys);
      this.options.logger.info({ keys: keys.length }, "replayed cache invalidations made while Redis was down");
    } catch (err) {
      this.rememberInvalidations(keys);
      this.l2Failed(err);
    }
  }

  private async flushMetrics(): Promise<void> {
    if (this.redis.status !== "ready") return;
    try {
      await flushMetrics(redisMetricsStore(this.redis, this.options.prefix));
    } catch (err) {
      this.options.logger.debug({ err }, "cache metrics flush failed; will retry");
    }
  }
}

function cacheRedisOptions(timeoutMs: number): RedisOptions {
  return {
    // A read must not wait for Redis: while it is down, fail at once and ask the loader.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: timeoutMs,
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
  };
}

function subscriberOptions(): RedisOptions {
  return {
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    autoResubscribe: false,
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
  };
}

/** Opens the cache's connections and subscribes to invalidations; starts degraded (with one warning) if Redis does not answer. */
export async function createCache(options: CacheOptions): Promise<TwoTierCache> {
  const timeoutMs = options.redisTimeoutMs ?? 1000;
  const redis =
    typeof options.redis === "string" ? new Redis(options.redis, cacheRedisOptions(timeoutMs)) : options.redis.duplicate(cacheRedisOptions(timeoutMs));
  const subscriber = typeof options.redis === "string" ? new Redis(options.redis, subscriberOptions()) : options.redis.duplicate(subscriberOptions());
  const cache = new TwoTierCache(options, redis, subscriber);
  const subscribed = subscriber.subscribe(invalidationChannel(options.prefix));
  const timeout = new Promise<"timeout">((resolve) => setTimeout(resolve, options.connectTimeoutMs ?? 5000, "timeout").unref());
  const ready = new Promise<void>((resolve) => (redis.status === "ready" ? resolve() : redis.once("ready", () => resolve())));
  const outcome = await Promise.race([Promise.all([subscribed, ready]), timeout]).catch((err: unknown) => err);
  if (outcome === "timeout" || outcome instanceof Error) {
    const where = typeof options.redis === "string" ? redactUrl(options.redis) : "the given connection";
    cache.l2Failed(new Error(`no answer from Redis at ${where} at start-up`));
  }
  return cache;
}
