import { JobCancelledError, JobDeadlineError } from "./job-stop.js";

/** After a stop, running statements are cancelled again this often until the handler returns (a statement sent just as the first cancel arrived). */
const RECANCEL_EVERY_MS = 200;
const RECANCEL_TIMES = 25;

/**
 * One job run's stop switch: aborted by an operator's cancel (the worker's
 * control channel calls cancel()) or by the job's deadline. Its signal is
 * JobContext.signal; its reason is a JobCancelledError or a JobDeadlineError.
 * On a stop it calls `cancelWork` (cancel the job's PostgreSQL statements) at
 * once and again until disposed.
 *
 * The AbortController is made on first use: creating one costs about as much
 * as the rest of a no-op job's runtime (the no-op bench), and most short jobs
 * never read their signal and are never stopped.
 */
export class JobStopControl {
  #controller: AbortController | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #recancelTimer: NodeJS.Timeout | undefined;
  #cancelWork: () => void = () => undefined;

  constructor(deadlineMs: number | undefined) {
    if (deadlineMs !== undefined) {
      this.#deadlineTimer = setTimeout(() => this.stop(new JobDeadlineError(deadlineMs)), deadlineMs);
    }
  }

  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }

  get stopped(): boolean {
    return this.#controller?.signal.aborted ?? false;
  }

  /** An operator's cancel; `reason` is what the operator gave. */
  cancel(reason: unknown): void {
    this.stop(new JobCancelledError(describeReason(reason)));
  }

  /** What to run on a stop; errors are the callee's to handle. */
  onStop(cancelWork: () => void): void {
    this.#cancelWork = cancelWork;
  }

  stop(reason: JobCancelledError | JobDeadlineError): void {
    if (this.stopped) return;
    clearTimeout(this.#deadlineTimer);
    this.#controller ??= new AbortController();
    this.#controller.abort(reason);
    this.#cancelWork();
    let times = 0;
    this.#recancelTimer = setInterval(() => {
      if (++times >= RECANCEL_TIMES) clearInterval(this.#recancelTimer);
      this.#cancelWork();
    }, RECANCEL_EVERY_MS);
    this.#recancelTimer.unref();
  }

  /** The error the job fails with after a stop, saying what it had committed (its last progress report). */
  failure(lastProgress: unknown): Error {
    const reason = this.signal.reason as JobCancelledError | JobDeadlineError;
    const committed = lastProgress === undefined ? "nothing reported" : JSON.stringify(lastProgress);
    return reason instanceof JobDeadlineError ? new JobDeadlineError(reason.deadlineMs, committed) : new JobCancelledError(reasonText(reason), committed);
  }

  dispose(): void {
    clearTimeout(this.#deadlineTimer);
    clearInterval(this.#recancelTimer);
  }
}

function describeReason(reason: unknown): string {
  return typeof reason === "string" && reason.length > 0 ? reason : "by an operator";
}

function reasonText(error: JobCancelledError): string {
  return error.message.replace(/^cancelled: /, "");
}
