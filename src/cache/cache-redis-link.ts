import type { RedisOptions } from "ioredis";
import type { Logger } from "../lib/logger.js";
import { type MetricsStore, redisMetricsStore } from "../lib/metrics.js";
import { describeRedisTarget, duplicateRedis, openRedis, type RedisConnection, type RedisTarget, redisKeyPrefix } from "../lib/redis.js";
import { invalidateCacheKeys, invalidationChannel, parseInvalidationPayload } from "./cache-invalidation.js";
import { type InvalidationLink, type LinkEvents, PendingInvalidations, reconnectDelayMs } from "./cache-links.js";
import { readWithSequence, storeIfNotInvalidated } from "./cache-redis-tier.js";

/**
 * The shared tier (L2) in Redis and the invalidation channel that comes with
 * it, on two connections of the cache's own: one for commands, which never
 * queues a command while Redis is down (a read must not wait for Redis), and
 * one subscribed to `<prefix>:cache:invalidate`.
 *
 * - One warning per outage, one info line when Redis returns.
 * - Invalidations made during an outage are kept and replayed on return.
 * - The subscription is renewed by hand on reconnect, and the cache told to
 *   clear its memory: messages published meanwhile never reached us.
 */
export class RedisCacheLink implements InvalidationLink {
  readonly via = "redis" as const;
  private readonly pending = new PendingInvalidations();
  private down = false;
  private subscriberLost = false;
  private closed = false;

  constructor(
    private readonly redis: RedisConnection,
    private readonly subscriber: RedisConnection,
    private readonly prefix: string,
    private readonly logger: Logger,
    private readonly where: string,
    events: LinkEvents,
  ) {
    // ── Listeners below must never throw. ──
    redis.on("error", (err: Error) => this.failed(err));
    redis.on("close", () => this.failed(new Error("connection to Redis closed")));
    redis.on("ready", () => {
      this.recovered();
      void this.replay();
    });
    subscriber.on("error", (err: Error) => logger.debug({ err: err.message }, "cache invalidation subscriber error; reconnecting"));
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
        .subscribe(invalidationChannel(prefix))
        .catch((err: Error) => logger.debug({ err: err.message }, "cache invalidation resubscribe failed; retrying on reconnect"));
      events.onResumed();
      logger.info("cache invalidation channel back; in-memory tier cleared");
    });
    subscriber.on("message", (_channel: string, message: string) => {
      const keys = parseInvalidationPayload(message);
      if (keys) events.onKeys(keys);
      else logger.warn({ message: message.slice(0, 200) }, "ignored a malformed cache invalidation message");
    });
  }

  /** Whether the shared tier can be asked right now. */
  get available(): boolean {
    return !this.closed && this.redis.status === "ready";
  }

  get connected(): boolean {
    return !this.closed && this.subscriber.status === "ready" && !this.subscriberLost;
  }

  /** The value (or null) with the invalidation sequence, or undefined when Redis did not answer. */
  async read(key: string): Promise<{ text: string | null; sequence: number; ttlMs: number } | undefined> {
    try {
      const read = await readWithSequence(this.redis, this.prefix, key);
      this.recovered();
      return read;
    } catch (err) {
      this.failed(err);
      return undefined;
    }
  }

  /**
   * Stores `value` unless the key was invalidated after `sequence`. Returns
   * false when it was (the value is already old); true when stored, or when
   * Redis did not answer and no newer write is known.
   */
  async store(key: string, value: unknown, sequence: number, ttlMs: number): Promise<boolean> {
    try {
      return (await storeIfNotInvalidated(this.redis, this.prefix, [{ key, value }], sequence, ttlMs)) === 1;
    } catch (err) {
      this.failed(err);
      return true;
    }
  }

  async invalidate(keys: string[]): Promise<void> {
    if (!this.available) {
      this.pending.add(keys);
      return;
    }
    try {
      await invalidateCacheKeys(this.redis, this.prefix, keys);
      this.recovered();
    } catch (err) {
      this.failed(err);
      this.pending.add(keys);
    }
  }

  async ready(timeoutMs: number): Promise<boolean> {
    const subscribed = this.subscriber.subscribe(invalidationChannel(this.prefix));
    const connected = new Promise<void>((resolve) => (this.redis.status === "ready" ? resolve() : this.redis.once("ready", () => resolve())));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(resolve, timeoutMs, "timeout");
      timer.unref();
    });
    const outcome = await Promise.race([Promise.all([subscribed, connected]), timeout]).catch((err: unknown) => err);
    clearTimeout(timer);
    if (outcome === "timeout" || outcome instanceof Error) {
      this.failed(new Error(`no answer from Redis at ${this.where} at start-up`));
      return false;
    }
    return true;
  }

  /** Counters are flushed to the Redis hash `<prefix>:dbjobs:metrics` (when the queues live in Redis). */
  metricsStore(): MetricsStore {
    const store = redisMetricsStore(this.redis, this.prefix);
    return {
      add: async (samples) => {
        if (!this.available) throw new Error("Redis is unavailable");
        await store.add(samples);
      },
      read: () => store.read(),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subscriber.disconnect();
    this.redis.disconnect();
  }

  /** Logs the first Redis failure of an outage; later ones are silent until it recovers. */
  private failed(err: unknown): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      "Redis cache tier unavailable; answering from memory and the database until it returns",
    );
  }

  private recovered(): void {
    if (!this.down) return;
    this.down = false;
    this.logger.info("Redis cache tier available again");
  }

  private async replay(): Promise<void> {
    if (this.pending.size === 0) return;
    const keys = this.pending.take();
    try {
      await invalidateCacheKeys(this.redis, this.prefix, keys);
      this.logger.info({ keys: keys.length }, "replayed cache invalidations made while Redis was down");
    } catch (err) {
      this.pending.add(keys);
      this.failed(err);
    }
  }
}

function commandOptions(timeoutMs: number): RedisOptions {
  return {
    // A read must not wait for Redis: while it is down, fail at once and ask the loader.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: timeoutMs,
    retryStrategy: reconnectDelayMs,
  };
}

function subscriberOptions(): RedisOptions {
  return { maxRetriesPerRequest: null, enableOfflineQueue: true, autoResubscribe: false, retryStrategy: reconnectDelayMs };
}

/**
 * Opens the link's two connections: from a URL or cluster nodes, or copying a
 * given connection's options. On a cluster the keys share one hash tag
 * (redisKeyPrefix), as the cache's scripts touch several keys at once.
 */
export function openRedisLink(
  redis: RedisTarget | RedisConnection,
  options: { prefix: string; logger: Logger; timeoutMs: number; events: LinkEvents },
): RedisCacheLink {
  const given = isConnection(redis) ? redis : undefined;
  const open = (redisOptions: RedisOptions) => (given ? duplicateRedis(given, redisOptions) : openRedis(redis as RedisTarget, redisOptions));
  const where = given ? "the given connection" : describeRedisTarget(redis as RedisTarget);
  const commands = open(commandOptions(options.timeoutMs));
  const prefix = redisKeyPrefix(commands, options.prefix);
  return new RedisCacheLink(commands, open(subscriberOptions()), prefix, options.logger, where, options.events);
}

function isConnection(redis: RedisTarget | RedisConnection): redis is RedisConnection {
  return typeof redis !== "string" && !("clusterNodes" in redis);
}
