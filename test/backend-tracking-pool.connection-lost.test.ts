import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { trackBackends } from "../src/lib/backend-tracking-pool.js";
import { createDb, type Db } from "../src/lib/db.js";
import { memoryLogger, useTestDb } from "./support/test-env.js";

/**
 * A job's connections come from its tracking view of one of our pools.
 * pg-pool listens for a connection's errors only while it is idle; a
 * connection a job holds when PostgreSQL terminates it (a failover, an
 * operator's pg_terminate_backend) relies on the listener our pools give
 * every connection (pool-errors.ts): without one the 'error' event is
 * unhandled and the worker process dies.
 */
describe("a job's held connection terminated by the server", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let pool: pg.Pool;

  beforeAll(() => {
    // One of our pools, as a job's view always wraps: its connections listen for errors (pool-errors.ts).
    db = createDb({ url: testDatabase.url, poolSize: 1, logger: memoryLogger("warn").logger });
    pool = db.pool;
  });
  afterAll(async () => {
    await db.close();
  });

  it("fails its next statement instead of the process, and the pool carries on with a new connection", async () => {
    const tracked = trackBackends(pool, new AbortController().signal);
    const client = await tracked.pool.connect();
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    const pid = rows[0]?.pid as number;
    // Closed: the socket's end, which follows the server's FATAL, arrives while the client is held and idle.
    const closed = new Promise<void>((resolve) => client.once("end", () => resolve()));

    await testDatabase.db.pool.query("SELECT pg_terminate_backend($1)", [pid]);
    await closed;
    await sleep(50);
    await expect(client.query("SELECT 1")).rejects.toThrow(/terminat|not queryable|closed/i);
    client.release();

    const again = await tracked.pool.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    expect(again.rows[0]?.pid).not.toBe(pid);
  });

  it("leaves no listener behind on a connection it gives back", async () => {
    const tracked = trackBackends(pool, new AbortController().signal);
    const counts: number[] = [];
    for (let round = 0; round < 5; round++) {
      const client = await tracked.pool.connect();
      counts.push(client.listenerCount("error"));
      await client.query("SELECT 1");
      client.release();
      await sleep(1);
    }
    // The same listeners while held, whichever round: none piles up on the pooled connection.
    expect(new Set(counts)).toEqual(new Set([counts[0]]));
    expect(counts[0]).toBeGreaterThan(0);
  });
});
