import { Redis, type RedisOptions } from "ioredis";
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

const lastErrors = new WeakMap<Redis, Error>();

/**
 * Why this connection is down: the code of the error that last broke it
 * (ECONNREFUSED, ENOTFOUND, ...), "closed" after quit, or "not_connected".
 * Undefined while it is ready, or still making its first connection.
 */
export function redisErrorCode(redis: Redis): string | undefined {
  if (redis.status === "ready") return undefined;
  if (redis.status === "end") return "closed";
  const err = lastErrors.get(redis) as (Error & { code?: unknown }) | undefined;
  if (!err) return undefined;
  return typeof err.code === "string" ? err.code : "not_connected";
}

export function createRedis(url: string, role: RedisRole, logger?: Logger): Redis {
  const redis = new Redis(url, redisOptions(role));
  // While Redis stays down, a line when it goes and one every 30 s, not one per reconnect attempt.
  const outage = createOutageLog({ logger, service: "Redis", fields: { url: redactUrl(url), role, setting: "REDIS_URL" } });
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
export function waitForRedis(redis: Redis, url: string, timeoutMs: number): Promise<void> {
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
        new QueueBackendUnavailableError("Redis", redactUrl(url), "REDIS_URL", `${code ?? "no answer"} for ${timeoutMs} ms`, { reasonCode: code ?? "timeout" }),
      );
    }, timeoutMs);
    redis.on("ready", onReady);
  });
}

/** BullMQ loses jobs if Redis may evict keys; warn when the policy is anything but noeviction. */
export async function warnUnlessNoEviction(redis: Redis, logger: Logger): Promise<string | undefined> {
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
