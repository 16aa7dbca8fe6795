import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "./logger.js";
import { redactUrl } from "./logger.js";

/**
 * Redis connections as BullMQ's production guide sets them up:
 * - `worker`: blocking commands must wait through outages, so requests never
 *   give up (`maxRetriesPerRequest: null`) and the client reconnects forever;
 * - `producer`: a request made while Redis is down fails at once
 *   (`enableOfflineQueue: false`) so the caller's HTTP request does not hang.
 */
export type RedisRole = "worker" | "producer";

export function redisOptions(role: RedisRole): RedisOptions {
  const reconnect = (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 5000);
  return role === "worker"
    ? { maxRetriesPerRequest: null, enableReadyCheck: false, retryStrategy: reconnect }
    : { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 5000, retryStrategy: reconnect };
}

export function createRedis(url: string, role: RedisRole, logger?: Logger): Redis {
  const redis = new Redis(url, redisOptions(role));
  let reported = false;
  redis.on("error", (err) => {
    // One line per outage, not one per reconnect attempt.
    if (!reported) logger?.warn({ err: err.message, url: redactUrl(url), role }, "Redis connection error; reconnecting");
    reported = true;
  });
  redis.on("ready", () => {
    if (reported) logger?.info({ role }, "Redis connection restored");
    reported = false;
  });
  return redis;
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
