import { errorCodes, isLockNotAvailable } from "../lib/retry.js";

/**
 * Someone else held a lock we needed: lock_timeout expired (55P03), or
 * PostgreSQL chose our statement as a deadlock's victim (40P01). Maintenance
 * and its catalog reads retry or skip such an object; they never fail a run
 * for it.
 */
export function isLockBusy(err: unknown): boolean {
  return isLockNotAvailable(err) || errorCodes(err).includes("40P01");
}
