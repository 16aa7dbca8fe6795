import { UnrecoverableError } from "bullmq";
import { coerceError, DbjobsError } from "../lib/errors.js";

/**
 * The one place a handler's error becomes a job failure. A DbjobsError marked
 * `retryable: false` becomes BullMQ's UnrecoverableError, which fails the job
 * at once without its remaining attempts; the original error's message,
 * `code` and `cause` are kept on it, so logs and listeners still see them.
 */
export function toJobFailure(thrown: unknown): Error {
  const error = coerceError(thrown);
  if (!(error instanceof DbjobsError) || error.retryable) return error;
  const failure = new UnrecoverableError(error.message);
  failure.cause = error;
  return Object.assign(failure, { code: error.code });
}
