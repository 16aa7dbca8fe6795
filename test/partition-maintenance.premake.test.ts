import type { Job } from "bullmq";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../src/lib/db.js";
import type { Logger } from "../src/lib/logger.js";
import { addUtcMonths, monthPartitionName, utcMonthStart } from "../src/partitions/month-bounds.js";
import type { JobContext } from "../src/queues/job-context.js";
import { workerServices } from "../src/queues/worker-services.js";
import { runHandler } from "./support/direct-job-context.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";

/** Calls the handler as the worker would, on a real database; progress is kept for assertions. */
function directContext(db: Db, log: Logger, url: string): JobContext & { progress: unknown[] } {
  const progress: unknown[] = [];
  return {
    job: { id: "direct" } as Job,
    log,
    db,
    signal: new AbortController().signal,
    redis: undefined as never,
    config: testConfig(url),
    prefix: "direct",
    services: workerServices(testConfig(url)),
    invalidateCache: async () => undefined,
    reportProgress: async (value) => {
      progress.push(value);
    },
    postpone: async () => {
      throw new Error("not in a worker");
    },
    waitingJobs: async () => 0,
    progress,
  };
}

const monthName = (offset: number) => monthPartitionName("transactions", addUtcMonths(utcMonthStart(new Date()), offset));

describe("partition-maintenance premakes monthly partitions", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let client: pg.Client;

  beforeAll(async () => {
    db = testDatabase.db;
    client = new pg.Client({ connectionString: testDatabase.url });
    await client.connect();
  });
  afterAll(async () => {
    await client.end();
  });

  const partitionNames = async () =>
    (
      await client.query<{ name: string }>(
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'transactions'::regclass ORDER BY 1",
      )
    ).rows.map((row) => row.name);

  it("creates the current month and N months ahead, and a repeat creates nothing", async () => {
    const { logger } = memoryLogger();
    const first = await runHandler("partition-maintenance", { monthsAhead: 2 }, directContext(db, logger, testDatabase.url));
    expect(first.created).toEqual([monthName(0), monthName(1), monthName(2)]);
    expect(first.movedFromDefault).toBe(0);
    expect(first.defaultRows).toBe(0);
    expect(first.warning).toBeUndefined();
    expect(await partitionNames()).toEqual(expect.arrayContaining([monthName(0), monthName(1), monthName(2), "transactions_default"]));

    const second = await runHandler("partition-maintenance", { monthsAhead: 2 }, directContext(db, logger, testDatabase.url));
    expect(second.created).toEqual([]);
    expect((await partitionNames()).length).toBe(4);
  });

  /** Names of the parent's indexes that have no counterpart on `partition`. */
  const missingIndexes = async (partition: string) => {
    const { rows } = await client.query<{ parent: string; child: string | null }>(
      `SELECT pi.relname AS parent,
              (SELECT ci.relname FROM pg_inherits inh JOIN pg_class ci ON ci.oid = inh.inhrelid JOIN pg_index x ON x.indexrelid = ci.oid
                WHERE inh.inhparent = pi.oid AND x.indrelid = $1::regclass) AS child
         FROM pg_index px JOIN pg_class pi ON pi.oid = px.indexrelid
        WHERE px.indrelid = 'transactions'::regclass`,
      [partition],
    );
    expect(rows.length).toBeGreaterThanOrEqual(9);
    return rows.filter((row) => row.child === null).map((row) => row.parent);
  };

  it("gives new partitions every index of the parent", async () => {
    expect(await missingIndexes(monthName(1))).toEqual([]);
  });

  it("moves rows that sit in the default partition into their months' new partitions, far-future months included, without loss", async () => {
    const target = addUtcMonths(utcMonthStart(new Date()), 5);
    const farFuture = addUtcMonths(utcMonthStart(new Date()), 30);
    await client.query(
      `INSERT INTO transactions (type, status, amount, "idempotencyKey", "createdAt")
       SELECT 'DEPOSIT', 'PENDING', g, 'premake-' || g, $1::timestamptz + g * interval '1 minute' FROM generate_series(1, 250) g`,
      [target],
    );
    await client.query(
      `INSERT INTO transactions (type, amount, "createdAt") SELECT 'FEE', 1, $1::timestamptz + g * interval '1 hour' FROM generate_series(1, 7) g`,
      [farFuture],
    );
    const checksum = async () =>
      (await client.query<{ n: string; sum: string }>(`SELECT count(*) AS n, sum(hashtextextended(t::text, 0)) AS sum FROM transactions t`)).rows[0];
    const before = await checksum();
    const { rows: inDefault } = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM transactions_default");
    expect(inDefault[0]?.n).toBe(257);

    const { logger, lines } = memoryLogger();
    const context = directContext(db, logger, testDatabase.url);
    const result = await runHandler("partition-maintenance", { table: "transactions", monthsAhead: 6 }, context);

    // Month 30 is beyond monthsAhead: its rows get their partition all the same.
    expect(result.created).toEqual([monthName(3), monthName(4), monthName(5), monthName(6), monthName(30)]);
    expect(result.movedFromDefault).toBe(257);
    expect(await checksum()).toEqual(before);
    const { rows: placed } = await client.query<{ partition: string; n: number }>(
      `SELECT tableoid::regclass::text AS partition, count(*)::int AS n FROM transactions GROUP BY 1 ORDER BY 1`,
    );
    expect(placed).toEqual([
      { partition: monthName(5), n: 250 },
      { partition: monthName(30), n: 7 },
    ]);
    // The moved rows keep working with the parent's trigger and indexes.
    await expect(
      client.query(`INSERT INTO transactions (type, amount, "idempotencyKey", "createdAt") VALUES ('DEPOSIT', 1, 'premake-1', now())`),
    ).rejects.toMatchObject({ code: "23505" });

    // Made by ATTACH rather than PARTITION OF: it still gets every index of the parent.
    expect(await missingIndexes(monthName(5))).toEqual([]);
    expect(await missingIndexes(monthName(30))).toEqual([]);
    expect(result.defaultRows).toBe(0);
    expect(result.warning).toBeUndefined();
    expect(lines().some((line) => line.level === 40 && String(line.msg).includes("default partition"))).toBe(false);
    // One report per month moved out of the default (2), then one per premade month (7).
    expect(context.progress.length).toBe(9);
  });

  it("analyzes the partitioned parent, which autovacuum never does", async () => {
    // pg_statistic holds inheritance statistics (stainherit) only after ANALYZE of the parent.
    const { rows } = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_statistic WHERE starelid = 'transactions'::regclass AND stainherit");
    expect(rows[0]?.n).toBeGreaterThan(0);
  });
});
