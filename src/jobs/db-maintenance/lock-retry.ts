import { isLockBusy } from "../../db-catalog/lock-busy.js";
import { retry } from "../../lib/retry.js";

/**
 * An object whose lock stays busy is retried a few times with backoff, then
 * reported as skipped: the job still succeeds and the next run tries again.
 * 4 attempts, 500 ms doubling up to 8 s, with jitter.
 */
const lockRetry = { maxAttempts: 4, baseDelayMs: 500, maxDelayMs: 8000 };

export type LockRetryOutcome<T> = { ok: true; value: T; attempts: number } | { ok: false; attempts: number; error: unknown };

export interface LockRetryOptions {
  /** Called after every attempt that found its lock busy, the last one included; e.g. to clean up what it left. */
  onLockBusy?: (attempt: number, err: unknown) => Promise<void>;
}

/**
 * Runs `operation`, retrying while it hits lock_timeout or a deadlock. After
 * the last attempt the lock error is returned, not thrown, so the caller can
 * report the object as skipped. Any other error is thrown.
 */
export async function withLockRetry<T>(operation: () => Promise<T>, options: LockRetryOptions = {}): Promise<LockRetryOutcome<T>> {
  let attempts = 0;
  try {
    const value = await retry(
      (attempt) => {
        attempts = attempt;
        return operation();
      },
      { ...lockRetry, isRetryable: isLockBusy, onRetry: options.onLockBusy },
    );
    return { ok: true, value, attempts };
  } catch (err) {
    if (!isLockBusy(err)) throw err;
    // retry() cleans up only before another attempt; the last one's leftovers go too.
    await options.onLockBusy?.(attempts, err);
    return { ok: false, attempts, error: err };
  }
}
