import { DbjobsError } from "../lib/errors.js";

/**
 * Why a running job was told to stop. These are the reasons of the job's
 * AbortSignal (JobContext.signal), so a handler that calls
 * `signal.throwIfAborted()` throws one of them.
 *
 * - JobCancelledError (JOB_CANCELLED): an operator cancelled it. Not retried.
 * - JobDeadlineError (JOB_DEADLINE): it ran past its deadlineMs. Retried like
 *   any failure while attempts remain (its work was rolled back, and the usual
 *   causes, a lock wait or a slow moment, pass); see docs/jobs.md.
 */
export class JobCancelledError extends DbjobsError {
  constructor(reason: string, committed?: string) {
    super("JOB_CANCELLED", `cancelled: ${reason}${committed ? `; committed before the cancel: ${committed}` : ""}`, { retryable: false });
  }
}

export class JobDeadlineError extends DbjobsError {
  readonly deadlineMs: number;

  constructor(deadlineMs: number, committed?: string) {
    super(
      "JOB_DEADLINE",
      `deadline: the job ran longer than its deadlineMs (${deadlineMs} ms) and was stopped${committed ? `; committed before the stop: ${committed}` : ""}. Raise deadlineMs, or give the job less work.`,
    );
    this.deadlineMs = deadlineMs;
  }
}

/** Whether a job ended by a stop: an operator's cancel or its deadline. */
export function isStopError(error: unknown): error is JobCancelledError | JobDeadlineError {
  return error instanceof JobCancelledError || error instanceof JobDeadlineError;
}

/** A failed job that ended by an operator's cancel (its failedReason), for operator views that show it as "cancelled". */
export function isCancelledFailure(failedReason: string | null | undefined): boolean {
  return typeof failedReason === "string" && failedReason.startsWith("cancelled: ");
}
