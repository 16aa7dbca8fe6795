import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createCache, type TwoTierCache } from "../src/cache/cache.js";
import { cacheNotifyChannel, invalidateCacheKeys } from "../src/cache/cache-invalidation.js";
import { cacheKeys } from "../src/cache/cache-keys.js";
import { cacheListenerApplicationName } from "../src/cache/cache-postgres-link.js";
import { loadEscrowBalance } from "../src/jobs/cache-prefetch/cache-entities.js";
import { loadConfig } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { memoryLogger, testPrefix, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * Without Redis, invalidations reach a process over its one LISTEN
 * connection. PostgreSQL drops it (a restart, a failover, an idle-session
 * killer) and refuses new connections for a while; meanwhile a write is
 * invalidated. The cache must not crash, must warn once, must come back and
 * LISTEN again, and must not serve what it held before: the notification
 * sent while it was away is lost for good.
 */
describe("cache when PostgreSQL drops its LISTEN connection (no Redis)", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let databaseName: string;
  /** A connection held across the outage: new ones are refused during it. */
  let held: pg.Client;
  /** On the server's `postgres` database: a database cannot refuse connections from inside itself. */
  let admin: pg.Client;
  let cache: TwoTierCache;
  /** What a process that stayed connected throughout heard (it LISTENs on `held`). */
  const delivered: string[] = [];
  const { logger, lines } = memoryLogger("info");
  const config = loadConfig({ CACHE_TTL_REFERENCE_MS: "600000" });
  const prefix = testPrefix();
  const accounts: string[] = [];

  beforeAll(async () => {
    db = testDatabase.db;
    databaseName = decodeURIComponent(new URL(testDatabase.url).pathname.slice(1));
    for (let index = 0; index < 2; index++) {
      const account = await db.prisma.escrowAccount.create({ data: { accountNumber: `ESC-LISTEN-${index}`, currentBalance: `${index + 1}00.00` } });
      accounts.push(account.id);
    }
    held = new pg.Client({ connectionString: testDatabase.url });
    await held.connect();
    held.on("notification", (message) => delivered.push(...(JSON.parse(message.payload ?? "[]") as string[])));
    await held.query(`LISTEN ${cacheNotifyChannel}`);
    admin = new pg.Client({ connectionString: inject("postgresAdminUrl") });
    await admin.connect();
    cache = await createCache({ databaseUrl: testDatabase.url, prefix, config, logger });
  });

  afterAll(async () => {
    await admin?.query(`ALTER DATABASE "${databaseName}" ALLOW_CONNECTIONS true`).catch(() => undefined);
    await admin?.end();
    await held?.end();
    await cache?.close();
  });

  const read = (index: number) => {
    const id = accounts[index] as string;
    return cache.getOrLoad(cacheKeys.escrowBalance(id), () => loadEscrowBalance(db, id), { kind: "reference" });
  };
  const lostWarnings = () => lines().filter((line) => String(line.msg).startsWith("cache invalidation channel (PostgreSQL LISTEN) lost"));

  it("comes back, LISTENs again, clears what it held, replays its own invalidations, and warns once", async () => {
    expect((await read(0))?.currentBalance.toFixed(2)).toBe("100.00");
    expect((await read(1))?.currentBalance.toFixed(2)).toBe("200.00");
    expect(cache.stats().invalidation).toEqual({ via: "postgres", connected: true });

    await admin.query(`ALTER DATABASE "${databaseName}" ALLOW_CONNECTIONS false`);
    const { rows } = await held.query<{ killed: boolean }>(
      "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
      [cacheListenerApplicationName],
    );
    expect(rows.length).toBeGreaterThanOrEqual(1);
    await waitFor("the cache to notice", async () => !cache.stats().invalidation.connected);

    // A write and its invalidation while the caches cannot listen: that notification never reaches them.
    await held.query(`UPDATE "escrow_accounts" SET "currentBalance" = 150 WHERE "id" = $1`, [accounts[0]]);
    await invalidateCacheKeys(held, prefix, [cacheKeys.escrowBalance(accounts[0] as string)]);
    // Reads go on from memory meanwhile (the database refuses this cache new connections, not reads on the pool's open ones).
    expect((await read(1))?.currentBalance.toFixed(2)).toBe("200.00");
    // This cache's own invalidation during the outage is kept for later.
    await cache.invalidate([cacheKeys.escrowBalance(accounts[1] as string)]);
    // Reconnect attempts fail for a while (100 ms doubling to 2 s): still one warning.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(lostWarnings()).toHaveLength(1);

    await admin.query(`ALTER DATABASE "${databaseName}" ALLOW_CONNECTIONS true`);
    await waitFor("the cache to LISTEN again", async () => cache.stats().invalidation.connected, 20_000);
    expect(lines().some((line) => line.msg === "cache invalidation channel back; in-memory tier cleared")).toBe(true);
    await waitFor("the outage's invalidation to be replayed to a process that stayed connected", async () =>
      delivered.includes(cacheKeys.escrowBalance(accounts[1] as string)),
    );
    // Cleared on return, so not the 100.00 it held before the lost notification.
    expect((await read(0))?.currentBalance.toFixed(2)).toBe("150.00");

    // And LISTENing again: a new invalidation reaches it.
    await db.prisma.escrowAccount.update({ where: { id: accounts[0] as string }, data: { currentBalance: "175.00" } });
    expect((await read(0))?.currentBalance.toFixed(2)).toBe("150.00");
    await invalidateCacheKeys(db.pool, prefix, [cacheKeys.escrowBalance(accounts[0] as string)]);
    await waitFor("the new invalidation to arrive", async () => (await read(0))?.currentBalance.toFixed(2) === "175.00", 10_000);
    expect(lostWarnings()).toHaveLength(1);
  });

  it("starts without PostgreSQL, with one warning, answers from the loader, and closes cleanly", async () => {
    const memory = memoryLogger("info");
    const unreachable = "postgresql://postgres@127.0.0.1:1/nowhere";
    const started = performance.now();
    const degraded = await createCache({ databaseUrl: unreachable, prefix, config, logger: memory.logger, connectTimeoutMs: 500 });
    try {
      expect(performance.now() - started).toBeLessThan(5000);
      expect(degraded.stats().invalidation).toEqual({ via: "postgres", connected: false });
      expect(await degraded.getOrLoad("user:x", async () => ({ id: "x" }), { kind: "reference" })).toEqual({ id: "x" });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const warnings = memory.lines().filter((line) => line.level === 40);
      expect(warnings).toHaveLength(1);
      expect(String(warnings[0]?.err)).toMatch(/ECONNREFUSED|no answer from PostgreSQL/);
      expect(JSON.stringify(warnings)).not.toContain("postgres@");
    } finally {
      await degraded.close();
    }
  });
});
