import { createHash } from "node:crypto";
import type { ChainableCommander } from "ioredis";
import type { RedisConnection } from "../lib/redis.js";

/**
 * The Lua scripts behind the cache's Redis tier, run by EVALSHA with an EVAL
 * fallback so they work on any connection (the worker's, the cache's own)
 * without registering commands on connections the cache does not own.
 *
 * Keys (with P the queue prefix):
 *   P:cache:<key>         the cached value (serialized, with a PX expiry)
 *   P:cache-seq           the invalidation sequence: +1 on every invalidation
 *   P:cache-epoch:<key>   the sequence number of the key's last invalidation
 *
 * A writer that read the database after observing sequence S may store its
 * value only if the key has not been invalidated since S (its epoch is absent
 * or ≤ S). That is the compare-and-set which keeps a slow reader or a prefetch
 * from overwriting a newer write with the older value it read.
 */

/** How long a key's invalidation epoch is remembered; a read-then-write slower than this could store a stale value. */
export const EPOCH_TTL_MS = 3_600_000;

export function valueKey(prefix: string, key: string): string {
  return `${prefix}:cache:${key}`;
}

export function epochKey(prefix: string, key: string): string {
  return `${prefix}:cache-epoch:${key}`;
}

export function sequenceKey(prefix: string): string {
  return `${prefix}:cache-seq`;
}

/**
 * KEYS[1] the sequence key, then pairs (value key, epoch key) per cache key.
 * ARGV[1] channel, ARGV[2] the JSON list of cache keys to publish, ARGV[3] epoch ttl ms.
 * Deletes every value, stamps every epoch with the new sequence, publishes once.
 * Returns the new sequence number.
 */
export const invalidateScript = `
local seq = redis.call('INCR', KEYS[1])
for i = 2, #KEYS, 2 do
  redis.call('DEL', KEYS[i])
  redis.call('SET', KEYS[i + 1], seq, 'PX', ARGV[3])
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return seq`;

/**
 * KEYS: pairs (value key, epoch key). ARGV[1] the sequence the caller observed
 * before reading the database, ARGV[2] ttl ms, then one serialized value per pair.
 * Stores each value whose key was not invalidated after ARGV[1].
 * Returns how many values were stored.
 */
export const setIfNotInvalidatedScript = `
local seen = tonumber(ARGV[1])
local stored = 0
for i = 1, #KEYS, 2 do
  local epoch = redis.call('GET', KEYS[i + 1])
  if not epoch or tonumber(epoch) <= seen then
    redis.call('SET', KEYS[i], ARGV[2 + (i + 1) / 2], 'PX', ARGV[2])
    stored = stored + 1
  end
end
return stored`;

const shaCache = new Map<string, string>();

function sha1(script: string): string {
  let sha = shaCache.get(script);
  if (!sha) {
    sha = createHash("sha1").update(script).digest("hex");
    shaCache.set(script, sha);
  }
  return sha;
}

/** Runs a script by hash, loading it on NOSCRIPT (first use, or after a Redis restart). */
export async function runScript(redis: RedisConnection, script: string, keys: string[], args: (string | number)[]): Promise<unknown> {
  try {
    return await redis.evalsha(sha1(script), keys.length, ...keys, ...args);
  } catch (err) {
    if (!String((err as Error).message).includes("NOSCRIPT")) throw err;
    return redis.eval(script, keys.length, ...keys, ...args);
  }
}

/** Makes sure `script` is cached in Redis so a pipeline of EVALSHA calls cannot meet NOSCRIPT. */
export async function loadScript(redis: RedisConnection, script: string): Promise<string> {
  return (await redis.script("LOAD", script)) as string;
}

export function pipelineScript(pipeline: ChainableCommander, script: string, keys: string[], args: (string | number)[]): void {
  pipeline.evalsha(sha1(script), keys.length, ...keys, ...args);
}
