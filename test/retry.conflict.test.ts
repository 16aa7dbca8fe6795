import { beforeAll, describe, expect, it } from "vitest";
import type { Db, Prisma } from "../src/lib/db.js";
import { RetryExhaustedError } from "../src/lib/errors.js";
import { backoffDelayMs, errorCodes, isWriteConflict, retryOnConflict, withConflictRetry } from "../src/lib/retry.js";
import { useTestDb } from "./support/test-env.js";

/**
 * Genuine write conflicts on real PostgreSQL: a Serializable transaction reads
 * two accounts and debits one, while a concurrent Serializable "partner"
 * transaction reads both and debits the other, and commits first. That is
 * write skew, which PostgreSQL's SSI must refuse: the slower one gets 40001.
 */
describe("withConflictRetry on real serialization failures", () => {
  const testDatabase = useTestDb();
  let db: Db;
  let first: string;
  let second: string;

  beforeAll(async () => {
    db = testDatabase.db;
    const { rows } = await db.pool.query<{ id: string }>(
      `INSERT INTO "escrow_accounts" ("accountNumber", "currentBalance") VALUES ('RETRY-1', 100), ('RETRY-2', 100) RETURNING "id"::text`,
    );
    [first, second] = rows.map((row) => row.id) as [string, string];
  });

  const balances = async () => {
    const { rows } = await db.pool.query<{ id: string; balance: string }>(`SELECT "id"::text, "currentBalance"::text AS balance FROM "escrow_accounts"`);
    return Object.fromEntries(rows.map((row) => [row.id, row.balance]));
  };

  /** The concurrent partner: reads both accounts and debits `second` by 1, in its own Serializable transaction, and commits. */
  async function partnerCommitsFirst(): Promise<void> {
    const client = await db.pool.connect();
    try {
      await client.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
      await client.query(`SELECT sum("currentBalance") FROM "escrow_accounts"`);
      await client.query(`UPDATE "escrow_accounts" SET "currentBalance" = "currentBalance" - 1 WHERE "id" = $1::uuid`, [second]);
      await client.query("COMMIT");
    } finally {
      client.release();
    }
  }

  /** Reads both accounts, lets the partner run while this transaction is open, then debits `first` by 10. */
  function debitFirst(attempts: number[], conflictOnAttempts: (attempt: number) => boolean) {
    return async (tx: Prisma.TransactionClient) => {
      const attempt = attempts.push(attempts.length + 1);
      await tx.$queryRawUnsafe(`SELECT sum("currentBalance") FROM "escrow_accounts"`);
      if (conflictOnAttempts(attempt)) await partnerCommitsFirst();
      await tx.$executeRawUnsafe(`UPDATE "escrow_accounts" SET "currentBalance" = "currentBalance" - 10 WHERE "id" = $1::uuid`, first);
      return attempt;
    };
  }

  it("reruns the whole transaction after a serialization failure, and its effect lands exactly once", async () => {
    const before = await balances();
    const attempts: number[] = [];
    const conflicts: unknown[] = [];

    const succeededOn = await withConflictRetry(
      db.prisma,
      debitFirst(attempts, (attempt) => attempt === 1),
      {
        isolationLevel: "Serializable",
        baseDelayMs: 1,
        onConflict: (_attempt, err) => conflicts.push(err),
      },
    );

    expect(succeededOn).toBe(2);
    expect(attempts).toEqual([1, 2]);
    expect(conflicts).toHaveLength(1);
    expect(isWriteConflict(conflicts[0])).toBe(true);
    expect(errorCodes(conflicts[0]).some((code) => code === "40001" || code === "P2034")).toBe(true);
    const after = await balances();
    expect(Number(after[first])).toBe(Number(before[first]) - 10);
    expect(Number(after[second])).toBe(Number(before[second]) - 1);
  });

  it("gives up after maxAttempts with RetryExhaustedError carrying the last conflict as its cause, and writes nothing", async () => {
    const before = await balances();
    const attempts: number[] = [];

    const error = await withConflictRetry(
      db.prisma,
      debitFirst(attempts, () => true),
      { maxAttempts: 3, baseDelayMs: 1 },
    ).catch((err: unknown) => err);

    expect(error).toBeInstanceOf(RetryExhaustedError);
    expect((error as RetryExhaustedError).attempts).toBe(3);
    expect((error as Error).message).toMatch(/Gave up after 3 attempts/);
    expect(isWriteConflict((error as Error).cause)).toBe(true);
    expect(attempts).toEqual([1, 2, 3]);
    const after = await balances();
    expect(after[first]).toBe(before[first]); // every attempt rolled back
    expect(Number(after[second])).toBe(Number(before[second]) - 3); // the partner committed three times
  });

  it("does not retry an error that is not a write conflict, and passes it through unchanged", async () => {
    const attempts: number[] = [];
    const error = await withConflictRetry(db.prisma, async (tx) => {
      attempts.push(1);
      await tx.$executeRawUnsafe(`INSERT INTO "escrow_accounts" ("accountNumber") VALUES ('RETRY-1')`); // unique violation
    }).catch((err: unknown) => err);

    expect(attempts).toHaveLength(1);
    expect(error).not.toBeInstanceOf(RetryExhaustedError);
    expect(isWriteConflict(error)).toBe(false);
    expect(errorCodes(error).some((code) => code === "23505" || code === "P2002" || code === "P2010")).toBe(true);
  });

  it("retryOnConflict retries a genuine deadlock (40P01) too", async () => {
    // Two transactions lock the two accounts in opposite orders; PostgreSQL kills one.
    const attempts: number[] = [];
    const lockInOrder = (a: string, b: string, gate: Promise<void>, arrived: () => void) =>
      retryOnConflict(
        async (attempt) => {
          attempts.push(attempt);
          const client = await db.pool.connect();
          try {
            await client.query("BEGIN");
            await client.query(`UPDATE "escrow_accounts" SET "version" = "version" + 1 WHERE "id" = $1::uuid`, [a]);
            if (attempt === 1) {
              arrived();
              await gate;
            }
            await client.query(`UPDATE "escrow_accounts" SET "version" = "version" + 1 WHERE "id" = $1::uuid`, [b]);
            await client.query("COMMIT");
          } catch (err) {
            await client.query("ROLLBACK").catch(() => undefined);
            throw err;
          } finally {
            client.release();
          }
        },
        { baseDelayMs: 1 },
      );
    let arrivals = 0;
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const arrived = () => {
      arrivals += 1;
      if (arrivals === 2) open();
    };
    const { rows: before } = await db.pool.query<{ total: number }>(`SELECT sum("version")::int AS total FROM "escrow_accounts"`);

    await Promise.all([lockInOrder(first, second, gate, arrived), lockInOrder(second, first, gate, arrived)]);

    expect(attempts.length).toBe(3); // one of the two ran twice
    const { rows: after } = await db.pool.query<{ total: number }>(`SELECT sum("version")::int AS total FROM "escrow_accounts"`);
    expect(after[0]?.total).toBe((before[0]?.total ?? 0) + 4);
  });
});

describe("backoffDelayMs", () => {
  it("grows exponentially from baseDelayMs and is capped at maxDelayMs", () => {
    const ceilings = Array.from({ length: 12 }, (_, index) => backoffDelayMs(index + 1, { baseDelayMs: 10, maxDelayMs: 1000 }, () => 1));
    expect(ceilings).toEqual([10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000, 1000]);
    expect(backoffDelayMs(1, {}, () => 1)).toBe(10); // defaults: 10 ms base
    expect(backoffDelayMs(50, {}, () => 1)).toBe(1000); // defaults: 1 s cap
  });

  it("keeps jitter within [half, full] of the capped delay and actually varies", () => {
    for (let attempt = 1; attempt <= 12; attempt++) {
      const ceiling = Math.min(500, 7 * 2 ** (attempt - 1));
      const samples = Array.from({ length: 300 }, () => backoffDelayMs(attempt, { baseDelayMs: 7, maxDelayMs: 500 }));
      for (const delay of samples) {
        expect(delay).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
        expect(delay).toBeLessThanOrEqual(ceiling);
      }
      if (ceiling >= 20) expect(new Set(samples).size).toBeGreaterThan(1);
    }
    expect(backoffDelayMs(4, { baseDelayMs: 100, maxDelayMs: 10_000 }, () => 0)).toBe(400);
  });
});
