import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCache, type TwoTierCache } from "../src/cache/cache.js";
import { cacheKeys } from "../src/cache/cache-keys.js";
import { loadEscrowBalance } from "../src/jobs/cache-prefetch/cache-entities.js";
import { loadConfig } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import { memoryLogger, testPrefix, useTestDb } from "./support/test-env.js";

/** A Redis server of this test's own, on a free port, that the test stops and starts for real. Never the shared one. */
class OwnRedis {
  private process?: ChildProcess;
  private readonly dir = mkdtempSync(join(tmpdir(), "dbjobs-cache-redis-"));
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.process = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.dir], {
      stdio: "ignore",
    });
    const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on("error", () => undefined);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          if (probe.status !== "ready") await probe.connect();
          if ((await probe.ping()) === "PONG") return;
        } catch (err) {
          if (attempt > 100) throw err;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    } finally {
      probe.disconnect();
    }
  }

  async kill(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async cleanup(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;

  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe("cache while Redis is down", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let redisServer: OwnRedis;
  let cache: TwoTierCache;
  /** Another process's cache on the same Redis: what its invalidation channel delivered. */
  let otherProcess: TwoTierCache;
  const delivered: string[] = [];
  const { logger, lines } = memoryLogger("info");
  const prefix = testPrefix();
  const accounts: string[] = [];

  beforeAll(async () => {
    db = testDatabase.db;
    for (let index = 0; index < 3; index++) {
      const account = await db.prisma.escrowAccount.create({ data: { accountNumber: `ESC-OUT-${index}`, currentBalance: `${index + 1}00.00` } });
      accounts.push(account.id);
    }
    redisServer = new OwnRedis(await freePort());
    await redisServer.start();
    // The outage is noticed from the connection closing, not from timeouts; the command timeout only has to be
    // long enough that a loaded machine never turns a slow answer into a second "outage" warning.
    cache = await createCache({ redis: redisServer.url, prefix, config: loadConfig({}), logger, redisTimeoutMs: 3000 });
    otherProcess = await createCache({
      redis: redisServer.url,
      prefix,
      config: loadConfig({}),
      logger: memoryLogger("warn").logger,
      redisTimeoutMs: 3000,
      onInvalidation: (keys) => delivered.push(...keys),
    });
  });

  afterAll(async () => {
    await otherProcess?.close();
    await cache?.close();
    await redisServer?.cleanup();
  });

  const read = (index: number) => {
    const id = accounts[index] as string;
    return cache.getOrLoad(cacheKeys.escrowBalance(id), () => loadEscrowBalance(db, id), { kind: "reference" });
  };
  const outageWarnings = () => lines().filter((line) => line.msg === "Redis cache tier unavailable; answering from memory and the database until it returns");

  it("keeps answering from memory and the database, logs one warning per outage, and recovers when Redis returns", async () => {
    expect((await read(0))?.currentBalance.toFixed(2)).toBe("100.00");
    expect(cache.stats().l2.available).toBe(true);

    await redisServer.kill();
    await until(() => !cache.stats().l2.available, "the cache to notice the outage");

    // Reads keep working: account 0 from memory, accounts 1 and 2 from the database, many times over.
    for (let round = 0; round < 20; round++) {
      const values = await Promise.all([read(0), read(1), read(2)]);
      expect(values.map((value) => value?.currentBalance.toFixed(2))).toEqual(["100.00", "200.00", "300.00"]);
    }
    // A write during the outage: its invalidation drops the memory copy at once and is replayed to Redis later.
    await db.prisma.escrowAccount.update({ where: { id: accounts[0] as string }, data: { currentBalance: "150.00" } });
    await cache.invalidate([cacheKeys.escrowBalance(accounts[0] as string)]);
    expect((await read(0))?.currentBalance.toFixed(2)).toBe("150.00");
    expect(outageWarnings()).toHaveLength(1);

    await redisServer.start();
    await until(() => cache.stats().l2.available, "the cache to reconnect");
    await until(() => lines().some((line) => line.msg === "Redis cache tier available again"), "the recovery log line");
    await until(() => lines().some((line) => line.msg === "replayed cache invalidations made while Redis was down"), "the outage's invalidation replayed");

    // Back to two tiers: a new read is stored in Redis again.
    const probe = new Redis(redisServer.url);
    try {
      await until(async () => {
        await read(1);
        await cache.invalidate([cacheKeys.escrowBalance(accounts[2] as string)]);
        await read(2);
        return (await probe.exists(`${prefix}:cache:${cacheKeys.escrowBalance(accounts[2] as string)}`)) === 1;
      }, "a value stored in Redis after recovery");
    } finally {
      probe.disconnect();
    }
    expect(outageWarnings()).toHaveLength(1);

    // A second outage is a new outage: one more warning, not one per call.
    await redisServer.kill();
    await until(() => !cache.stats().l2.available, "the second outage");
    for (let round = 0; round < 10; round++) await Promise.all([read(0), read(1), read(2)]);
    expect(outageWarnings()).toHaveLength(2);
    await redisServer.start();
    await until(() => cache.stats().l2.available, "the second recovery");

    // Invalidations reach other processes again: their subscriptions came back with Redis.
    const key = cacheKeys.escrowBalance(accounts[1] as string);
    await until(async () => {
      await cache.invalidate([key]);
      return delivered.includes(key);
    }, "another process to receive an invalidation after the outages");
  });
});
