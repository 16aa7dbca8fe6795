import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../src/lib/db.js";
import { memoryLogger, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * Connections of our pools that the server terminates (a failover, an
 * operator's pg_terminate_backend): one held by someone (BullMQ's backend,
 * Prisma's adapter, a job) fails its next statement instead of ending the
 * process with an unhandled 'error'; an idle one is replaced, and the warning
 * says what happened without the client (and its connection parameters).
 */
describe("a pool connection the server terminates", () => {
  const testDatabase = useTestDb();
  const memory = memoryLogger("debug");
  let db: Db;

  beforeAll(() => {
    db = createDb({ url: testDatabase.url, poolSize: 2, logger: memory.logger, applicationName: "dbjobs:pool-lost-test" });
  });
  afterAll(async () => {
    await db.close();
  });

  const terminate = (pid: number) => testDatabase.db.pool.query("SELECT pg_terminate_backend($1)", [pid]);

  it("held: its next statement fails, the process carries on, and the pool gives a new connection", async () => {
    const client = await db.pool.connect();
    const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid as number;
    const closed = new Promise<void>((resolve) => client.once("end", () => resolve()));
    await terminate(pid);
    await closed;
    await sleep(50);
    await expect(client.query("SELECT 1")).rejects.toThrow();
    client.release();
    const { rows } = await db.pool.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    expect(rows[0]?.pid).not.toBe(pid);
  });

  it("idle: the pool replaces it and warns with the error's code, not the client", async () => {
    const { rows } = await db.pool.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    await terminate(rows[0]?.pid as number);
    const warning = await waitFor(
      "the idle-connection warning",
      async () => memory.lines().find((line) => line.msg === "idle PostgreSQL connection lost; the pool will reconnect"),
      10_000,
    );
    expect(warning.err).toMatchObject({ message: expect.stringContaining("terminating connection"), code: "57P01" });
    expect(JSON.stringify(memory.lines())).not.toMatch(/connectionParameters|"password"/);
    expect((await db.pool.query<{ one: number }>("SELECT 1 AS one")).rows[0]?.one).toBe(1);
  });
});
