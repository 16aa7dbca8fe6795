import { describe, expect, it } from "vitest";
import { loadConfig, queueStoreOptions, sessionDatabaseUrl } from "../src/lib/config.js";
import { createDb } from "../src/lib/db.js";
import { memoryLogger } from "./support/test-env.js";

/** DIRECT_DATABASE_URL: validated, and where sessions, the PostgreSQL queues and migrations go. Needs no services (no pool connects). */
describe("DIRECT_DATABASE_URL", () => {
  const pooled = "postgresql://app@pgbouncer:6432/dbjobs";
  const direct = "postgresql://app@db.internal:5432/dbjobs";

  it("is refused when it is not a URL, naming the variable", () => {
    for (const bad of ["db.internal:5432/dbjobs", "redis://db.internal:6379", "not a url"]) {
      expect(() => loadConfig({ DIRECT_DATABASE_URL: bad }), bad).toThrow(/DIRECT_DATABASE_URL: must be a postgresql:\/\/ URL/);
    }
    expect(loadConfig({ DIRECT_DATABASE_URL: "postgres://app@db.internal/dbjobs" }).DIRECT_DATABASE_URL).toBe("postgres://app@db.internal/dbjobs");
  });

  it("takes sessions and the PostgreSQL queues when set; unset, DATABASE_URL does, as before", () => {
    const withDirect = loadConfig({ DATABASE_URL: pooled, DIRECT_DATABASE_URL: direct });
    expect(sessionDatabaseUrl(withDirect)).toBe(direct);
    expect(queueStoreOptions(withDirect)).toMatchObject({ kind: "postgres", databaseUrl: direct });

    const queuesElsewhere = loadConfig({ DATABASE_URL: pooled, DIRECT_DATABASE_URL: direct, QUEUE_DATABASE_URL: "postgresql://app@queues:5432/q" });
    expect(queueStoreOptions(queuesElsewhere)).toMatchObject({ databaseUrl: "postgresql://app@queues:5432/q" });

    const without = loadConfig({ DATABASE_URL: pooled });
    expect(sessionDatabaseUrl(without)).toBe(pooled);
    expect(queueStoreOptions(without)).toMatchObject({ databaseUrl: pooled });
  });

  it("gives a Db a separate direct pool only when it names another URL", async () => {
    const logger = memoryLogger("warn").logger;
    const single = createDb({ url: direct, logger });
    const same = createDb({ url: direct, directUrl: direct, logger });
    const split = createDb({ url: pooled, directUrl: direct, logger });
    try {
      expect(single.directPool).toBeUndefined();
      expect(same.directPool).toBeUndefined();
      const pool = split.directPool;
      expect(pool).toBeDefined();
      expect(pool).not.toBe(split.pool);
      // Opened once, on first use.
      expect(split.directPool).toBe(pool);
      expect((pool as unknown as { options: { connectionString: string } }).options.connectionString).toBe(direct);
    } finally {
      await Promise.all([single.close(), same.close(), split.close()]);
    }
  });
});
