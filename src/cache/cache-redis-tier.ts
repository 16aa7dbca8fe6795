import type { RedisConnection } from "../lib/redis.js";
import { epochKey, loadScript, pipelineScript, runScript, sequenceKey, setIfNotInvalidatedScript, valueKey } from "./cache-scripts.js";
import { serializeCacheValue } from "./cache-serializer.js";

/**
 * The Redis tier (L2) as three operations. Every write is conditional on the
 * invalidation sequence the writer saw before it read the database, so a
 * write that committed (and invalidated) in between always wins.
 */

/**
 * In one round trip: the value (or null) with the invalidation sequence, read
 * atomically by MGET, and the value's remaining time to live (ms, ≤ 0 if none).
 */
export async function readWithSequence(redis: RedisConnection, prefix: string, key: string): Promise<{ text: string | null; sequence: number; ttlMs: number }> {
  const replies = (await redis.pipeline().mget(valueKey(prefix, key), sequenceKey(prefix)).pttl(valueKey(prefix, key)).exec()) ?? [];
  for (const [err] of replies) if (err) throw err;
  const [text, sequence] = (replies[0]?.[1] ?? []) as (string | null)[];
  return { text: text ?? null, sequence: Number(sequence ?? 0), ttlMs: Number(replies[1]?.[1] ?? -1) };
}

/** The invalidation sequence now; read it before reading the database for a later `storeIfNotInvalidated`. */
export async function readSequence(redis: RedisConnection, prefix: string): Promise<number> {
  return Number((await redis.get(sequenceKey(prefix))) ?? 0);
}

export interface CacheEntryToStore {
  key: string;
  value: unknown;
}

/** Pairs per script call in `storeIfNotInvalidated`; the calls themselves are pipelined. */
export const storeBatchSize = 1000;

/**
 * Stores entries whose keys were not invalidated after `seenSequence`, with a
 * PX expiry of `ttlMs`, in one pipeline of multi-key script calls. Returns how
 * many were stored (the rest were invalidated by a newer write meanwhile).
 */
export async function storeIfNotInvalidated(
  redis: RedisConnection,
  prefix: string,
  entries: CacheEntryToStore[],
  seenSequence: number,
  ttlMs: number,
): Promise<number> {
  const encoded = entries.filter((entry) => entry.value !== undefined).map((entry) => ({ key: entry.key, text: serializeCacheValue(entry.value) }));
  return storeSerializedIfNotInvalidated(redis, prefix, encoded, seenSequence, ttlMs);
}

/** `storeIfNotInvalidated` for values already in the cache's wire format (cache-serializer.ts), e.g. built by SQL. */
export async function storeSerializedIfNotInvalidated(
  redis: RedisConnection,
  prefix: string,
  encoded: { key: string; text: string }[],
  seenSequence: number,
  ttlMs: number,
): Promise<number> {
  if (encoded.length === 0) return 0;
  if (encoded.length <= storeBatchSize) {
    return Number(await runScript(redis, setIfNotInvalidatedScript, pairKeys(prefix, encoded), [seenSequence, ttlMs, ...encoded.map((entry) => entry.text)]));
  }
  // A pipeline cannot fall back from EVALSHA to EVAL per call, so load first.
  await loadScript(redis, setIfNotInvalidatedScript);
  const pipeline = redis.pipeline();
  for (let start = 0; start < encoded.length; start += storeBatchSize) {
    const chunk = encoded.slice(start, start + storeBatchSize);
    pipelineScript(pipeline, setIfNotInvalidatedScript, pairKeys(prefix, chunk), [seenSequence, ttlMs, ...chunk.map((entry) => entry.text)]);
  }
  const replies = (await pipeline.exec()) ?? [];
  let stored = 0;
  for (const [err, reply] of replies) {
    if (err) throw err;
    stored += Number(reply);
  }
  return stored;
}

function pairKeys(prefix: string, entries: { key: string }[]): string[] {
  return entries.flatMap((entry) => [valueKey(prefix, entry.key), epochKey(prefix, entry.key)]);
}
