import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../src/lib/db.js";
import { createTestDatabase, memoryLogger, type TestDatabase } from "./support/test-env.js";

describe("slow-query log", () => {
  let database: TestDatabase;
  let db: Db;
  const memory = memoryLogger("warn");
  // Far above what a fast statement takes even on a loaded machine (the `SELECT 1` below must never be logged),
  // and the slow ones sleep past it.
  const slowQueryMs = 500;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb({ url: database.url, logger: memory.logger, slowQueryMs });
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  const slowLines = () => memory.lines().filter((line) => line.msg === "slow query");

  it("logs a slow statement once, whether sent through Prisma or on the pool, without its values", async () => {
    await db.prisma.$queryRawUnsafe(`SELECT pg_sleep(0.55)::text, $1::text AS "prismaSecret"`, "value-through-prisma");
    await db.pool.query(`SELECT pg_sleep(0.55)::text, $1::text AS "poolSecret"`, ["value-on-the-pool"]);
    await db.pool.query(`SELECT 1`);

    const lines = slowLines();
    expect(lines).toHaveLength(2);
    expect(lines.map((line) => String(line.query))).toEqual([expect.stringContaining('"prismaSecret"'), expect.stringContaining('"poolSecret"')]);
    for (const line of lines) expect(Number(line.durationMs)).toBeGreaterThanOrEqual(slowQueryMs);
    const text = JSON.stringify(memory.lines());
    expect(text).not.toContain("value-through-prisma");
    expect(text).not.toContain("value-on-the-pool");
  });

  it("still logs a slow statement that fails, and passes the error on", async () => {
    const before = slowLines().length;
    await expect(db.pool.query(`SELECT 1 / floor(random() * 0)::int FROM pg_sleep(0.55)`)).rejects.toThrow(/division by zero/);
    expect(slowLines()).toHaveLength(before + 1);
  });
});
