import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import { QueueBackendUnavailableError } from "./errors.js";
import type { Logger } from "./logger.js";
import { redactUrl } from "./logger.js";
import { createOutageLog } from "./outage-log.js";

/**
 * Redis connections as BullMQ's production guide sets them up:
 * - `worker`: blocking commands must wait through outages, so requests never
 *   give up (`maxRetriesPerRequest: null`) and the client reconnects forever;
 * - `producer`: a request made while Redis is down fails at once
 *   (`enableOfflineQueue: false`) so the caller's HTTP request does not hang.
 * Both reconnect in the background with capped exponential backoff.
 */
export type RedisRole = "worker" | "producer";

export function redisOptions(role: RedisRole): RedisOptions {
  const reconnect = (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 5000);
  return role === "worker"
    ? { maxRetriesPerRequest: null, enableReadyCheck: false, retryStrategy: reconnect }
    : { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 5000, retryStrategy: reconnect };
}

/** A connection to one Redis, or to a Redis Cluster (REDIS_CLUSTER_NODES). */
export type RedisConnection = Redis | Cluster;

export interface RedisClusterNode {
  host: string;
  port: number;
}

/** Where Redis is: a redis:// URL (REDIS_URL), or a Redis Cluster's seed nodes (REDIS_CLUSTER_NODES). */
export type RedisTarget = string | { clusterNodes: readonly RedisClusterNode[] };

export function isCluster(redis: RedisConnection): redis is Cluster {
  return redis instanceof Cluster;
}

/** The variable a target comes from, for error messages. */
export function redisSetting(target: RedisTarget): string {
  return typeof target === "string" ? "REDIS_URL" : "REDIS_CLUSTER_NODES";
}

/** A target for messages: the URL with its password masked, or the cluster's seed nodes. */
export function describeRedisTarget(target: RedisTarget): string {
  return typeof target === "string" ? redactUrl(target) : `cluster ${target.clusterNodes.map((node) => `${node.host}:${node.port}`).join(",")}`;
}

/**
 * The prefix of dbjobs' own keys (metrics, scheduler lease, schedules, cache,
 * rate limit): on a cluster it is a hash tag, so every one of them lands in
 * one slot and the multi-key scripts and pipelines over them stay legal.
 */
export function redisKeyPrefix(redis: RedisConnection, prefix: string): string {
  return isCluster(redis) ? hashTag(prefix) : prefix;
}

/**
 * BullMQ's prefix for one queue. On a cluster `{<prefix>:<queue>}`: a queue's
 * keys (`{dbjobs:q}:q:wait`, ...) share one slot, as BullMQ's scripts need,
 * and different queues hash to different slots, so they spread over the masters.
 */
export function bullmqPrefix(redis: RedisConnection, prefix: string, queue: string): string {
  return isCluster(redis) ? hashTag(`${unTagged(prefix)}:${queue}`) : prefix;
}

function hashTag(prefix: string): string {
  return prefix.startsWith("{") && prefix.endsWith("}") ? prefix : `{${prefix}}`;
}

function unTagged(prefix: string): string {
  return prefix.startsWith("{") && prefix.endsWith("}") ? prefix.slice(1, -1) : prefix;
}

/**
 * A connection to `target` with per-connection `options`. On a cluster the
 * options go to each node's connection, except those ioredis reads from the
 * Cluster itself: reconnecting (clusterRetryStrategy) and the offline queue.
 */
export function openRedis(target: RedisTarget, options: RedisOptions): RedisConnection {
  if (typeof target === "string") return new Redis(target, options);
  return new Cluster([...target.clusterNodes], clusterOptions(options, {}));
}

/** A new connection like `redis` (same target) with `options` on top. */
export function duplicateRedis(redis: RedisConnection, options: RedisOptions): RedisConnection {
  if (!isCluster(redis)) return redis.duplicate(options);
  return redis.duplicate([], clusterOptions(options, redis.options.redisOptions ?? {}));
}

function clusterOptions(options: RedisOptions, base: RedisOptions): ClusterOptions {
  const { retryStrategy, enableOfflineQueue, enableReadyCheck: _readyCheck, ...nodeOptions } = options;
  return {
    redisOptions: { ...base, ...nodeOptions },
    ...(retryStrategy ? { clusterRetryStrategy: (times: number) => retryStrategy(times) ?? null } : {}),
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
  };
}

const lastErrors = new WeakMap<RedisConnection, Error>();

/**
 * Why this connection is down: the code of the error that last broke it
 * (ECONNREFUSED, ENOTFOUND, ...), "closed" after quit, or "not_connected".
 * Undefined while it is ready, or still making its first connection.
 */
export function redisErrorCode(redis: RedisConnection): string | undefined {
  if (redis.status === "ready") return undefined;
  if (redis.status === "end") return "closed";
  const err = lastErrors.get(redis) as (Error & { code?: unknown }) | undefined;
  if (!err) return undefined;
  return typeof err.code === "string" ? err.code : "not_connected";
}

export function createRedis(target: RedisTarget, role: RedisRole, logger?: Logger): RedisConnection {
  const redis = openRedis(target, redisOptions(role));
  // While Redis stays down, a line when it goes and one every 30 s, not one per reconnect attempt.
  const outage = createOutageLog({ logger, service: "Redis", fields: { url: describeRedisTarget(target), role, setting: redisSetting(target) } });
  redis.on("error", (err: Error & { code?: string }) => {
    lastErrors.set(redis, err);
    outage.down(err.code ?? err.name);
  });
  redis.on("ready", () => {
    outage.up();
    lastErrors.delete(redis);
  });
  return redis;
}

/**
 * Resolves once `redis` is connected, or rejects after `timeoutMs` with a
 * QueueBackendUnavailableError naming the service, the masked URL and the
 * setting: what producers and operator verbs do instead of hanging.
 */
export function waitForRedis(redis: RedisConnection, target: RedisTarget, timeoutMs: number): Promise<void> {
  if (redis.status === "ready") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const timer = setTimeout(() => {
      const code = redisErrorCode(redis);
      done(
        new QueueBackendUnavailableError("Redis", describeRedisTarget(target), redisSetting(target), `${code ?? "no answer"} for ${timeoutMs} ms`, {
          reasonCode: code ?? "timeout",
        }),
      );
    }, timeoutMs);
    redis.on("ready", onReady);
  });
}

/** BullMQ loses jobs if Redis may evict keys; warn when the policy is anything but noeviction. */
export async function warnUnlessNoEviction(redis: RedisConnection, logger: Logger): Promise<string | undefined> {
  try {
    const reply = (await redis.config("GET", "maxmemory-policy")) as string[];
    const policy = reply[1];
    if (policy && policy !== "noeviction") {
      logger.warn({ policy }, "Redis maxmemory-policy is not noeviction: Redis may evict job keys under memory pressure. Set maxmemory-policy noeviction.");
    }
    return policy;
  } catch (err) {
    logger.debug({ err }, "could not read maxmemory-policy (CONFIG may be disabled)");
    return undefined;
  }
}
