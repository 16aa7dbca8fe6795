import type { Job } from "bullmq";
import { Redis } from "ioredis";
import { expect } from "vitest";
import { createCache, type TwoTierCache } from "../src/cache/cache.js";
import { cacheKeys } from "../src/cache/cache-keys.js";
import { deserializeCacheValue } from "../src/cache/cache-serializer.js";
import { type CachedUser, type EscrowBalance, loadEscrowBalance, loadUser } from "../src/jobs/cache-prefetch/cache-entities.js";
import type { CachePrefetchResult } from "../src/jobs/cache-prefetch/contract.js";
import { cacheOptionsFrom } from "./support/cache-setups.js";
import { type FaultWorld, faultMatrix } from "./support/fault-matrix.js";
import { memoryLogger } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * cache-prefetch under the fault matrix: 60,000 active escrow accounts and
 * 60,000 recently active users, streamed from one snapshot per kind 1,000 rows
 * at a time into the Redis tier, so each fault lands mid-stream. Whenever the
 * stream is open the test writes, as the application does (commit, then
 * invalidate through the cache API), to the rows the stream reaches last: the
 * prefetch has read their old values in its snapshot and stores them after
 * the write. Those runs die in the PostgreSQL and SIGKILL faults, so the test
 * writes once more when the run that completes is streaming (after the Redis
 * fault the same run goes on). Check: for every entity written, the Redis
 * tier holds the new value or nothing, and a reader through a fresh cache gets
 * the new value.
 */
const rows = 60_000;
const perWrite = 20;

interface State {
  writer: TwoTierCache;
  redis: Redis;
  prefix: string;
  /** Balance (escrow account id) and name (user id) each write set, in order. */
  balances: Map<string, string>;
  names: Map<string, string>;
  writes: number;
  /** Streams the faults landed on; the last write waits for one that is not among them. */
  faultedStreams: number[];
  job?: Job;
}

/** Backends of the world's worker with the prefetch's cursor open: a kind is being streamed. */
async function streaming(world: FaultWorld): Promise<number[]> {
  const { rows: found } = await world.db.pool.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dbjobs:cache-prefetch' AND query LIKE '%dbjobs_cache_prefetch%'`,
  );
  return found.map((row) => row.pid);
}

/** Commits new values for the next `perWrite` accounts and users from the end of each stream's order, then invalidates their keys. */
async function write(world: FaultWorld, state: State): Promise<void> {
  const batch = ++state.writes;
  const skip = (batch - 1) * perWrite;
  const { rows: accounts } = await world.db.pool.query<{ id: string; balance: string }>(
    `UPDATE "escrow_accounts" a SET "currentBalance" = t.balance::numeric, "version" = a."version" + 1
       FROM (SELECT "id", ($2::int * 1000 + row_number() OVER ())::text || '.25' AS balance FROM "escrow_accounts"
              ORDER BY "updatedAt" ASC, "id" DESC OFFSET $1 LIMIT ${perWrite}) t
      WHERE a."id" = t."id" RETURNING a."id"::text AS id, t.balance`,
    [skip, batch],
  );
  const { rows: users } = await world.db.pool.query<{ id: string; name: string }>(
    `UPDATE "users" u SET "name" = t.name
       FROM (SELECT "id", 'written ' || $2::int || '/' || row_number() OVER () AS name FROM "users"
              ORDER BY "lastActiveAt" ASC, "id" DESC OFFSET $1 LIMIT ${perWrite}) t
      WHERE u."id" = t."id" RETURNING u."id"::text AS id, t.name`,
    [skip, batch],
  );
  for (const account of accounts) state.balances.set(account.id, account.balance);
  for (const user of users) state.names.set(user.id, user.name);
  await state.writer.invalidate([...accounts.map((account) => cacheKeys.escrowBalance(account.id)), ...users.map((user) => cacheKeys.user(user.id))]);
}

faultMatrix<State>({
  queue: "cache-prefetch",
  async prepare(world) {
    // Distinct times, so each stream's order (most recent first) is fixed and its last rows are known.
    await world.db.pool.query(
      `INSERT INTO "escrow_accounts" ("accountNumber", "currentBalance", "availableBalance", "updatedAt")
       SELECT 'FM-' || g, g % 1000 + 0.5, g % 1000 + 0.5, now() - g * interval '1 second' FROM generate_series(1, $1::int) g`,
      [rows],
    );
    await world.db.pool.query(
      `INSERT INTO "users" ("email", "name", "lastActiveAt") SELECT 'fm' || g || '@example.com', 'User ' || g, now() - g * interval '1 second'
         FROM generate_series(1, $1::int) g`,
      [rows],
    );
    await world.db.pool.query(`ANALYZE "escrow_accounts", "users"`);
    const writer = await createCache(cacheOptionsFrom(world.config, memoryLogger("warn").logger));
    const redis = new Redis(world.config.REDIS_URL as string, { maxRetriesPerRequest: null });
    // The Redis fault stops this client's server too; it reconnects, and its outage is not the test's error.
    redis.on("error", () => undefined);
    return { writer, redis, prefix: world.config.QUEUE_PREFIX, balances: new Map(), names: new Map(), writes: 0, faultedStreams: [] };
  },
  async enqueue(world, state) {
    state.job = await world.producer.enqueue("cache-prefetch", { kinds: ["escrowBalances", "activeUsers", "globalCounts"], limit: rows });
    return state.job;
  },
  async midWork(world, state) {
    // For the second fault, the retried run's stream, not the killed one on its way out.
    const pid = (await streaming(world)).find((candidate) => !state.faultedStreams.includes(candidate));
    if (pid === undefined) return false;
    state.faultedStreams.push(pid);
    await write(world, state);
    return true;
  },
  async afterFaults(world, state) {
    // The run that completes (a retry, the replacement worker's, or after the Redis fault the same one) races this write too.
    await waitFor(
      "a stream of the run that completes, or the job's end",
      async () =>
        (world.fault === "redis-restarted" && state.faultedStreams.length > 0) ||
        (await streaming(world)).some((pid) => !state.faultedStreams.includes(pid)) ||
        ["completed", "failed"].includes(await (state.job as Job).getState()),
      180_000,
      25,
    );
    await write(world, state);
  },
  async release(state) {
    await state.writer.close().catch(() => undefined);
    // The shared Redis keeps no cache entries of a finished world (120,000 of them here).
    const stream = state.redis.scanStream({ match: `${state.prefix}:cache*`, count: 5000 });
    for await (const keys of stream as AsyncIterable<string[]>) if (keys.length > 0) await state.redis.unlink(...keys).catch(() => undefined);
    state.redis.disconnect();
  },
  async verify(world, state, job) {
    const result = job.returnvalue as CachePrefetchResult;
    expect(result.sharedTier).toBe("redis");
    expect(result.read).toMatchObject({ escrowBalances: rows, activeUsers: rows, globalCounts: 1 });
    expect(result.warmed.escrowBalances + result.skipped.escrowBalances).toBe(rows);
    expect(state.balances.size).toBe(state.writes * perWrite);
    expect(state.names.size).toBe(state.writes * perWrite);

    // What the Redis tier holds for each written entity: the new value, or nothing (then a reader loads it).
    const stored = async <T>(key: string) => {
      const text = await state.redis.get(`${state.prefix}:cache:${key}`);
      return text === null ? null : deserializeCacheValue<T>(text);
    };
    const staleBalances: string[] = [];
    for (const [id, balance] of state.balances) {
      const value = await stored<EscrowBalance>(cacheKeys.escrowBalance(id));
      if (value !== null && value.currentBalance.toFixed(2) !== balance) staleBalances.push(`${id}: ${value.currentBalance.toFixed(2)} ≠ ${balance}`);
    }
    const staleNames: string[] = [];
    for (const [id, name] of state.names) {
      const value = await stored<CachedUser>(cacheKeys.user(id));
      if (value !== null && value.name !== name) staleNames.push(`${id}: ${value.name} ≠ ${name}`);
    }
    expect(staleBalances).toEqual([]);
    expect(staleNames).toEqual([]);

    // And a reader in a process that has cached nothing yet gets the written values through the cache API.
    const reader = await createCache(cacheOptionsFrom(world.config, memoryLogger("warn").logger));
    try {
      for (const [id, balance] of state.balances) {
        const value = await reader.getOrLoad(cacheKeys.escrowBalance(id), () => loadEscrowBalance(world.db, id), { kind: "balance" });
        expect(value?.currentBalance.toFixed(2), id).toBe(balance);
      }
      for (const [id, name] of state.names) {
        const value = await reader.getOrLoad(cacheKeys.user(id), () => loadUser(world.db, id), { kind: "reference" });
        expect(value?.name, id).toBe(name);
      }
    } finally {
      await reader.close();
    }
  },
});
