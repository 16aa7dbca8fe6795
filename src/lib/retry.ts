import { setTimeout as sleep } from "node:timers/promises";
import type { Prisma, PrismaClient } from "./db.js";
import { RetryExhaustedError } from "./errors.js";

/**
 * The conflict-retry helper (SPEC §3). It reruns a whole transaction when
 * PostgreSQL reports a serialization failure (40001) or a deadlock (40P01),
 * or Prisma reports a write conflict (P2034); any other error goes straight
 * to the caller. Modelled on Graphile Worker's RETRYABLE_ERROR_CODES.
 */
export const RETRYABLE_SQLSTATES = new Set(["40001", "40P01"]);
export const RETRYABLE_PRISMA_CODES = new Set(["P2034"]);

export interface BackoffOptions {
  /** Delay before the first retry, before jitter. @defaultValue 10 */
  baseDelayMs?: number;
  /** Upper bound of any single delay. @defaultValue 1000 */
  maxDelayMs?: number;
}

/**
 * Exponential backoff with "equal jitter": the delay for `attempt` (1-based)
 * lies in [d/2, d] where d = min(maxDelayMs, baseDelayMs × 2^(attempt-1)).
 * Keeping half the delay fixed makes the schedule increase while the random
 * half spreads out processes that collided.
 */
export function backoffDelayMs(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = options.baseDelayMs ?? 10;
  const max = options.maxDelayMs ?? 1000;
  const ceiling = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Finds a SQLSTATE or Prisma code anywhere in an error's cause chain. */
export function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current && typeof current === "object" && depth < 6; depth++) {
    const record = current as Record<string, unknown>;
    for (const key of ["code", "originalCode", "sqlState"]) {
      if (typeof record[key] === "string") codes.push(record[key] as string);
    }
    const meta = record.meta as Record<string, unknown> | undefined;
    if (meta && typeof meta.code === "string") codes.push(meta.code);
    const driverError = meta?.driverAdapterError as Record<string, unknown> | undefined;
    const driverCause = driverError?.cause as Record<string, unknown> | undefined;
    if (driverCause && typeof driverCause.originalCode === "string") codes.push(driverCause.originalCode);
    current = record.cause;
  }
  return codes;
}

export function isWriteConflict(err: unknown): boolean {
  return errorCodes(err).some((code) => RETRYABLE_SQLSTATES.has(code) || RETRYABLE_PRISMA_CODES.has(code));
}

/** SQLSTATE 55P03: lock_timeout expired (or NOWAIT found the lock taken). */
export function isLockNotAvailable(err: unknown): boolean {
  return errorCodes(err).includes("55P03");
}

/** A broken connection: SQLSTATE class 08, an administrator's or crash shutdown (57P01-57P03), or no SQLSTATE at all (a socket error). */
export function isConnectionFailure(err: unknown): boolean {
  const codes = errorCodes(err);
  if (codes.length === 0) return true;
  return codes.some((code) => code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03");
}

export interface RetryOptions extends BackoffOptions {
  /** Total attempts, the first included. @defaultValue 5 */
  maxAttempts?: number;
  /** Which errors are worth another attempt; any other goes straight to the caller. */
  isRetryable(err: unknown): boolean;
  /** Called before each wait; e.g. to count, log, or clean up what the failed attempt left. A throw here is ignored. */
  onRetry?(attempt: number, err: unknown): void | Promise<void>;
  /** What to throw after the last attempt failed. @defaultValue the last error itself */
  exhausted?(attempts: number, err: unknown): unknown;
}

/**
 * The project's one retry loop: reruns `operation` while it fails with a
 * retryable error, with exponential backoff and equal jitter between attempts.
 */
export async function retry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (err) {
      if (!options.isRetryable(err)) throw err;
      if (attempt >= maxAttempts) throw options.exhausted ? options.exhausted(attempt, err) : err;
      try {
        await options.onRetry?.(attempt, err);
      } catch {
        // a counting or cleaning callback must never change the outcome
      }
      await sleep(backoffDelayMs(attempt, options));
    }
  }
}

export interface ConflictRetryOptions extends BackoffOptions {
  /** Total attempts, the first included. @defaultValue 5 */
  maxAttempts?: number;
  /** @defaultValue Serializable */
  isolationLevel?: Prisma.TransactionIsolationLevel;
  /** Interactive transaction timeout. @defaultValue 15000 */
  timeoutMs?: number;
  /** Called before each retry, e.g. to count conflicts. Must not throw. */
  onConflict?: (attempt: number, err: unknown) => void;
}

/** Retries `operation` (no transaction of its own) on write conflicts. */
export function retryOnConflict<T>(operation: (attempt: number) => Promise<T>, options: ConflictRetryOptions = {}): Promise<T> {
  return retry(operation, {
    ...options,
    isRetryable: isWriteConflict,
    onRetry: options.onConflict,
    exhausted: (attempts, err) => new RetryExhaustedError(attempts, err),
  });
}

/** Runs `work` in one transaction at `isolationLevel`, rerunning the whole transaction on write conflicts. */
export function withConflictRetry<T>(prisma: PrismaClient, work: (tx: Prisma.TransactionClient) => Promise<T>, options: ConflictRetryOptions = {}): Promise<T> {
  return retryOnConflict(
    () =>
      prisma.$transaction(work, {
        isolationLevel: options.isolationLevel ?? "Serializable",
        timeout: options.timeoutMs ?? 15_000,
        maxWait: options.timeoutMs ?? 15_000,
      }),
    options,
  );
}
