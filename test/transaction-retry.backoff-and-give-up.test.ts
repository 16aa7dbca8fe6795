import { describe, expect, it } from "vitest";
import { transactionRetryBackoff, transactionRetryDelayMs } from "../src/jobs/transaction-retry/due-transactions.js";
import { RetryExhaustedError } from "../src/lib/errors.js";
import { backoffDelayMs, errorCodes, isWriteConflict, withConflictRetry } from "../src/lib/retry.js";
import { useTestDb } from "./support/test-env.js";

/** A pseudo-random source with a fixed seed, so a failure can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

describe("transaction-retry backoff schedules", () => {
  it("the delay before the next attempt of a transaction grows, is capped at 1 h, and is jittered within [half, full]", () => {
    const { baseDelayMs, maxDelayMs } = transactionRetryBackoff;
    const lowest = Array.from({ length: 12 }, (_, index) => transactionRetryDelayMs(index + 1, undefined, () => 0));
    const highest = Array.from({ length: 12 }, (_, index) => transactionRetryDelayMs(index + 1, undefined, () => 1));
    // The full (un-jittered) delays double from 30 s until the 1 h cap.
    expect(highest.slice(0, 8)).toEqual([30_000, 60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000]);
    expect(new Set(highest.slice(7))).toEqual(new Set([maxDelayMs]));
    for (let index = 1; index < 12; index++) {
      expect(highest[index]!).toBeGreaterThanOrEqual(highest[index - 1]!);
      expect(lowest[index]!).toBeGreaterThanOrEqual(lowest[index - 1]!);
      // Below the cap the ranges do not even overlap: the shortest draw of attempt n+1 is the longest of attempt n.
      if (highest[index]! < maxDelayMs) expect(lowest[index]!).toBeGreaterThanOrEqual(highest[index - 1]!);
    }
    const random = seeded(42);
    for (let attempt = 1; attempt <= 12; attempt++) {
      const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
      const draws = Array.from({ length: 500 }, () => transactionRetryDelayMs(attempt, undefined, random));
      expect(Math.min(...draws)).toBeGreaterThanOrEqual(ceiling / 2);
      expect(Math.max(...draws)).toBeLessThanOrEqual(ceiling);
      // Jitter really spreads the draws (not a constant).
      expect(new Set(draws).size).toBeGreaterThan(100);
    }
  });

  it("the in-place conflict backoff grows from its base, is capped, and stays within its jitter bounds", () => {
    const options = { baseDelayMs: 5, maxDelayMs: 250 };
    const full = Array.from({ length: 10 }, (_, index) => backoffDelayMs(index + 1, options, () => 1));
    expect(full).toEqual([5, 10, 20, 40, 80, 160, 250, 250, 250, 250]);
    const random = seeded(7);
    for (let attempt = 1; attempt <= 10; attempt++) {
      const draws = Array.from({ length: 200 }, () => backoffDelayMs(attempt, options, random));
      expect(Math.min(...draws)).toBeGreaterThanOrEqual(Math.floor(full[attempt - 1]! / 2));
      expect(Math.max(...draws)).toBeLessThanOrEqual(full[attempt - 1]!);
    }
  });
});

describe("the conflict-retry helper against real PostgreSQL errors", () => {
  const testDatabase = useTestDb();

  it("gives up after maxAttempts with RetryExhaustedError carrying the last serialization failure as its cause", async () => {
    let runs = 0;
    const conflicts: number[] = [];
    const attempt = withConflictRetry(
      testDatabase.db.prisma,
      async (tx) => {
        runs++;
        await tx.$executeRawUnsafe(`DO $$ BEGIN RAISE EXCEPTION 'could not serialize access (simulated)' USING ERRCODE = '40001'; END $$`);
      },
      { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5, onConflict: (n) => conflicts.push(n) },
    );
    const err = await attempt.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(err).toBeInstanceOf(RetryExhaustedError);
    expect((err as RetryExhaustedError).attempts).toBe(4);
    expect((err as Error).message).toMatch(/Gave up after 4 attempts on write conflicts/);
    expect(isWriteConflict((err as Error).cause)).toBe(true);
    expect(errorCodes((err as Error).cause)).toContain("40001");
    expect(runs).toBe(4);
    expect(conflicts).toEqual([1, 2, 3]);
  });

  it("does not retry an error that is not a write conflict, and passes it through unchanged", async () => {
    let runs = 0;
    const err = await withConflictRetry(testDatabase.db.prisma, async (tx) => {
      runs++;
      await tx.$executeRawUnsafe(`SELECT 1 / 0`);
    }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(runs).toBe(1);
    expect(err).not.toBeInstanceOf(RetryExhaustedError);
    expect(errorCodes(err)).toContain("22012");
  });
});
