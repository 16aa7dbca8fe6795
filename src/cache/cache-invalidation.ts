import { DbjobsError } from "../lib/errors.js";
import { type RedisConnection, redisKeyPrefix } from "../lib/redis.js";
import { EPOCH_TTL_MS, epochKey, invalidateScript, runScript, sequenceKey, valueKey } from "./cache-scripts.js";

/**
 * Invalidation on write, by either transport:
 *
 * - Redis (the shared tier, when REDIS_URL is set): deletes the keys from
 *   Redis, stamps each with a new invalidation epoch (so a reader or prefetch
 *   that read the database before this write cannot store its older value
 *   afterwards; see cache-scripts.ts) and publishes them on
 *   `<prefix>:cache:invalidate`. Call it after the write has committed.
 * - PostgreSQL (no Redis): `pg_notify('dbjobs_cache_invalidate', <JSON array
 *   of keys>)`, which every cache connected to the same database LISTENs to.
 *   On a connection inside the writing transaction (a Prisma interactive
 *   transaction, or a pg client between BEGIN and COMMIT), PostgreSQL sends
 *   it when the transaction commits, and never if it rolls back.
 *
 * Either way every process's in-memory tier drops the keys.
 */
export function cacheKeyPrefix(prefix: string): string {
  return `${prefix}:cache:`;
}

export function invalidationChannel(prefix: string): string {
  return `${prefix}:cache:invalidate`;
}

/**
 * The PostgreSQL channel. NOTIFY is scoped to a database, not to a key
 * prefix: two deployments with different QUEUE_PREFIX on one database drop
 * each other's keys from memory, which costs a load and is never stale.
 */
export const cacheNotifyChannel = "dbjobs_cache_invalidate";

/** A PostgreSQL connection that can send the NOTIFY: a pg Pool or Client. */
export interface PostgresQueryable {
  query(text: string, values: unknown[]): Promise<unknown>;
}

/** A Prisma client, or the `tx` of an interactive transaction (then the NOTIFY goes out at its commit). */
export interface PrismaExecutor {
  $executeRawUnsafe(query: string, ...values: unknown[]): Promise<number>;
}

/** Where an invalidation is sent: the shared tier's Redis when there is one, else the application's PostgreSQL database. */
export type CacheInvalidationTarget = RedisConnection | PostgresQueryable | PrismaExecutor;

/** Keys per script call: bounds the time one call holds Redis. */
const keysPerCall = 1000;

/** A NOTIFY payload must stay under 8000 bytes; keys are sent in as many notifications as that takes. */
const maxPayloadBytes = 7000;

// Takes $1 the channel, $2 a JSON array of cache keys. Returns nothing; delivered to every listener when the transaction commits.
const notifySql = "SELECT pg_notify($1, $2)";

export async function invalidateCacheKeys(target: CacheInvalidationTarget, prefix: string, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  const unique = [...new Set(keys)];
  if (isRedis(target)) {
    // An application passes QUEUE_PREFIX as it is; on a cluster the keys live under its hash tag.
    const keyPrefix = redisKeyPrefix(target, prefix);
    for (let start = 0; start < unique.length; start += keysPerCall) {
      const chunk = unique.slice(start, start + keysPerCall);
      const redisKeys = [sequenceKey(keyPrefix), ...chunk.flatMap((key) => [valueKey(keyPrefix, key), epochKey(keyPrefix, key)])];
      await runScript(target, invalidateScript, redisKeys, [invalidationChannel(keyPrefix), JSON.stringify(chunk), EPOCH_TTL_MS]);
    }
    return;
  }
  for (const chunk of chunkByBytes(unique, maxPayloadBytes)) {
    const payload = JSON.stringify(chunk);
    if ("$executeRawUnsafe" in target) await target.$executeRawUnsafe(notifySql, cacheNotifyChannel, payload);
    else await target.query(notifySql, [cacheNotifyChannel, payload]);
  }
}

function isRedis(target: CacheInvalidationTarget): target is RedisConnection {
  return typeof (target as Partial<RedisConnection>).evalsha === "function";
}

/** Parses a notification's payload; undefined for anything but a JSON array of strings. */
export function parseInvalidationPayload(payload: string | undefined): string[] | undefined {
  try {
    const keys: unknown = JSON.parse(payload ?? "");
    return Array.isArray(keys) && keys.every((key) => typeof key === "string") ? keys : undefined;
  } catch {
    return undefined;
  }
}

function chunkByBytes(keys: string[], limit: number): string[][] {
  const chunks: string[][] = [];
  let current: string[] = [];
  let size = 2;
  for (const key of keys) {
    const bytes = Buffer.byteLength(JSON.stringify(key)) + 1;
    if (bytes + 2 > limit) {
      throw new DbjobsError(
        "DBJOBS_CACHE_KEY_TOO_LONG",
        `cache key "${key.slice(0, 60)}…" is ${bytes} bytes; a key sent by NOTIFY must stay under ${limit - 3}: shorten it`,
        {
          retryable: false,
        },
      );
    }
    if (current.length > 0 && size + bytes > limit) {
      chunks.push(current);
      current = [];
      size = 2;
    }
    current.push(key);
    size += bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
