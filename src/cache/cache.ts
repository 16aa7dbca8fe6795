import { LRUCache } from "lru-cache";
import pg from "pg";
import type { Config } from "../lib/config.js";
import { ConfigError } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import { flushMetrics, type MetricsStore } from "../lib/metrics.js";
import { postgresMetricsStore } from "../lib/metrics-postgres.js";
import type { RedisConnection, RedisTarget } from "../lib/redis.js";
import type { InvalidationLink, LinkEvents } from "./cache-links.js";
import { PostgresInvalidationLink } from "./cache-postgres-link.js";
import { openRedisLink, type RedisCacheLink } from "./cache-redis-link.js";
import { deserializeCacheValue } from "./cache-serializer.js";
import { CacheCounters, type CacheKind, type CacheStatsSnapshot } from "./cache-stats.js";

export { type CacheKind, type CacheKindStats, type CacheStatsSnapshot, cacheKinds, readCacheStats } from "./cache-stats.js";

/**
 * The two-tier cache: an in-process LRU (L1) in front of a shared tier (L2)
 * in Redis when there is one, then the loader (the database).
 *
 * - Reads: L1, then L2, then the loader; concurrent misses on one key in one
 *   process share one load (stampede protection).
 * - Writes to L2 are compare-and-set against the invalidation sequence read
 *   with the miss, so a value read from the database before a write can never
 *   land in Redis after that write's invalidation (see cache-scripts.ts).
 * - Invalidation reaches every process's L1: through Redis pub/sub with a
 *   Redis tier, else through PostgreSQL LISTEN/NOTIFY on the application's
 *   database. A load that an invalidation overtakes is returned to its
 *   callers but not kept.
 * - Redis or the LISTEN connection down: answered from L1 and the loader,
 *   one warning per outage, and L1 is cleared when the channel comes back
 *   (messages sent while it was away are lost). Invalidations made meanwhile
 *   are replayed.
 *
 * Without Redis there is no shared tier, by choice: reading one in PostgreSQL
 * costs the same round trip as the primary-key loaders it would front (see
 * docs/cache.md, "Without Redis").
 *
 * Values held in L1 are shared between callers: treat them as read-only.
 */
export interface CacheOptions {
  /**
   * The shared tier and invalidation channel: a Redis URL (normally
   * REDIS_URL), a Redis Cluster's nodes (`redisTarget(config)` reads both),
   * or a connection whose options are copied (the cache opens its own two). Without it there is no shared tier, and invalidations travel
   * through PostgreSQL (`databaseUrl`). Every process must agree: a worker
   * with REDIS_URL invalidates through Redis.
   * @defaultValue none: no shared tier
   */
  redis?: RedisTarget | RedisConnection;
  /**
   * The application's database (normally DATABASE_URL), where jobs send
   * their invalidations with NOTIFY when there is no Redis; the cache LISTENs
   * on one dedicated connection. Required without `redis`. Also where the
   * counters are flushed when the queues live in PostgreSQL (unless
   * `config.QUEUE_DATABASE_URL` names another database).
   * @defaultValue none
   */
  databaseUrl?: string;
  /**
   * The same database reached without a transaction-pooling PgBouncer
   * (normally DIRECT_DATABASE_URL), for the LISTEN connection: through
   * PgBouncer in transaction mode a LISTEN is lost once its statement ends.
   * @defaultValue databaseUrl
   */
  directDatabaseUrl?: string;
  /** Key prefix, normally config.QUEUE_PREFIX; Redis keys live at `<prefix>:cache:<key>`. */
  prefix: string;
  /**
   * TTLs and L1 size; QUEUE_BACKEND and QUEUE_DATABASE_URL say where the
   * counters go: the queue store's metrics (a Redis hash, or table
   * dbjobs.metric_samples), which /metrics and `dbjobs status` read.
   */
  config: Pick<Config, "CACHE_TTL_REFERENCE_MS" | "CACHE_TTL_BALANCE_MS" | "CACHE_TTL_AGGREGATE_MS" | "CACHE_L1_MAX_ENTRIES"> &
    Partial<Pick<Config, "QUEUE_BACKEND" | "QUEUE_DATABASE_URL">>;
  logger: Logger;
  /** How long one Redis command may take before the read is answered from the loader instead. @defaultValue 1000 */
  redisTimeoutMs?: number;
  /** How often counters are flushed to the metrics store. @defaultValue 5000 */
  metricsFlushMs?: number;
  /** How long `createCache` waits for Redis, or for the LISTEN connection, before starting degraded. @defaultValue 5000 */
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
  /** The shared tier: "redis", or "none" without Redis. */
  l2: { tier: "redis" | "none"; available: boolean };
  /** How invalidations reach this process, and whether they do right now. */
  invalidation: { via: "redis" | "postgres"; connected: boolean };
}

interface Flight {
  promise: Promise<{ value: unknown; source: "l2" | "load" }>;
  /** Set when an invalidation for the key arrives mid-flight: the result must not enter L1. */
  invalidated: boolean;
}

export class TwoTierCache {
  private readonly l1: LRUCache<string, { value: unknown }>;
  private readonly inflight = new Map<string, Flight>();
  private readonly counters = new CacheCounters();
  private readonly flushTimer: NodeJS.Timeout;
  /** The shared tier, with Redis; it is also the invalidation link then. */
  private readonly shared: RedisCacheLink | undefined;
  private readonly link: InvalidationLink;
  private readonly metrics: { store: MetricsStore; close(): Promise<void> } | undefined;
  private closed = false;

  constructor(private readonly options: CacheOptions) {
    const { config, logger } = options;
    if (!options.redis && !options.databaseUrl) {
      throw new ConfigError(
        "createCache needs `redis` (REDIS_URL: the shared tier, and invalidations through Redis) or `databaseUrl` (DATABASE_URL: invalidations through PostgreSQL LISTEN/NOTIFY); with neither, no other process's invalidation could reach this cache.",
      );
    }
    this.l1 = new LRUCache({
      max: config.CACHE_L1_MAX_ENTRIES,
      ttl: Math.max(config.CACHE_TTL_REFERENCE_MS, config.CACHE_TTL_BALANCE_MS, config.CACHE_TTL_AGGREGATE_MS),
    });
    const events: LinkEvents = {
      onKeys: (keys) => {
        this.dropFromMemory(keys);
        try {
          options.onInvalidation?.(keys);
        } catch (err) {
          logger.warn({ err }, "onInvalidation listener threw");
        }
      },
      onResumed: () => {
        // Anything held, or being loaded, may be what a lost invalidation was about.
        this.l1.clear();
        for (const flight of this.inflight.values()) flight.invalidated = true;
      },
    };
    if (options.redis) {
      this.shared = openRedisLink(options.redis, { prefix: options.prefix, logger, timeoutMs: options.redisTimeoutMs ?? 1000, events });
      this.link = this.shared;
    } else {
      this.link = new PostgresInvalidationLink((options.directDatabaseUrl ?? options.databaseUrl) as string, logger, events);
    }
    this.metrics = this.metricsTarget();
    this.flushTimer = setInterval(() => void this.flushMetrics(), options.metricsFlushMs ?? 5000);
    this.flushTimer.unref();
  }

  /** Resolves once the invalidation channel listens, or after `timeoutMs` with one warning (it keeps trying). */
  ready(timeoutMs: number): Promise<boolean> {
    return this.link.ready(timeoutMs);
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

  /**
   * Removes the keys from this process's memory at once, then from the shared
   * tier and every other process's memory (through Redis, or NOTIFY). Call it
   * after the write has committed.
   */
  async invalidate(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    this.dropFromMemory(keys);
    await this.link.invalidate(keys);
  }

  stats(): CacheStats {
    return {
      ...this.counters.snapshot(),
      l1: { entries: this.l1.size, maxEntries: this.options.config.CACHE_L1_MAX_ENTRIES },
      l2: { tier: this.shared ? "redis" : "none", available: this.shared?.available ?? false },
      invalidation: { via: this.link.via, connected: this.link.connected },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.flushTimer);
    await this.flushMetrics();
    await this.link.close();
    await this.metrics?.close();
    this.l1.clear();
  }

  private async fill(key: string, loader: () => Promise<unknown>, kind: CacheKind, ttlMs: number, flight: Flight) {
    const shared = this.closed ? undefined : this.shared;
    let sequence: number | undefined;
    if (shared?.available) {
      const read = await shared.read(key);
      if (read?.text != null) {
        const value = deserializeCacheValue(read.text);
        if (!flight.invalidated) this.l1.set(key, { value }, { ttl: read.ttlMs > 0 ? Math.min(read.ttlMs, ttlMs) : ttlMs });
        return { value, source: "l2" as const };
      }
      sequence = read?.sequence;
    }
    this.counters.load(kind);
    const value = await loader();
    if (value === undefined) return { value, source: "load" as const };
    // false: a write invalidated the key while we loaded, so what we hold is already old.
    const current = shared && sequence !== undefined ? await shared.store(key, value, sequence, ttlMs) : true;
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

  /**
   * Where the counters go: the queue store's metrics, so /metrics and `dbjobs
   * status` count this process. The Redis hash when the queues live in Redis;
   * else table dbjobs.metric_samples in the queue database, on one pooled
   * connection that closes when idle. None when neither can be reached.
   */
  private metricsTarget(): { store: MetricsStore; close(): Promise<void> } | undefined {
    const { config, logger } = this.options;
    const backend = config.QUEUE_BACKEND ?? (this.shared ? "redis" : "postgres");
    if (backend === "redis") return this.shared && { store: this.shared.metricsStore(), close: async () => undefined };
    const url = config.QUEUE_DATABASE_URL ?? this.options.databaseUrl;
    if (!url) return undefined;
    let pool: pg.Pool | undefined;
    const open = async () => {
      if (!pool) {
        pool = new pg.Pool({
          connectionString: url,
          max: 1,
          idleTimeoutMillis: 10_000,
          connectionTimeoutMillis: 5000,
          application_name: "dbjobs:cache-metrics",
        });
        pool.on("error", (err) => logger.debug({ err: err.message }, "cache metrics connection lost; reconnecting at the next flush"));
      }
      return pool;
    };
    return { store: postgresMetricsStore(open), close: async () => void (await pool?.end().catch(() => undefined)) };
  }

  private async flushMetrics(): Promise<void> {
    if (!this.metrics) return;
    try {
      await flushMetrics(this.metrics.store);
    } catch (err) {
      this.options.logger.debug({ err }, "cache metrics flush failed; will retry");
    }
  }
}

/**
 * Opens the cache's connections and starts listening for invalidations.
 * Starts degraded, with one warning, if Redis (or PostgreSQL, without Redis)
 * does not answer within `connectTimeoutMs`, and keeps trying.
 */
export async function createCache(options: CacheOptions): Promise<TwoTierCache> {
  const cache = new TwoTierCache(options);
  await cache.ready(options.connectTimeoutMs ?? 5000);
  return cache;
}
