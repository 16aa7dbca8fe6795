import { JobCancelledError, JobDeadlineError } from "./job-stop.js";

/** After a stop, running statements are cancelled again this often until the handler returns (a statement sent just as the first cancel arrived). */
const RECANCEL_EVERY_MS = 200;
const RECANCEL_TIMES = 25;

/**
 * One job run's stop switch: aborted by an operator's cancel (BullMQ's
 * processor signal, fired by worker.cancelJob) or by the job's deadline.
 * Its signal is JobContext.signal; its reason is a JobCancelledError or a
 * JobDeadlineError. On a stop it calls `cancelWork` (cancel the job's
 * PostgreSQL statements) at once and again until disposed.
 */
export class JobStopControl {
  readonly #controller = new AbortController();
  #deadlineTimer: NodeJS.Timeout | undefined;
  #recancelTimer: NodeJS.Timeout | undefined;
  #cancelWork: () => void = () => undefined;

  constructor(processorSignal: AbortSignal | undefined, deadlineMs: number | undefined) {
    processorSignal?.addEventListener("abort", () => this.stop(new JobCancelledError(describeReason(processorSignal.reason))), { once: true });
    if (deadlineMs !== undefined) {
      this.#deadlineTimer = setTimeout(() => this.stop(new JobDeadlineError(deadlineMs)), deadlineMs);
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** What to run on a stop; errors are the callee's to handle. */
  onStop(cancelWork: () => void): void {
    this.#cancelWork = cancelWork;
  }

  stop(reason: JobCancelledError | JobDeadlineError): void {
    if (this.#controller.signal.aborted) return;
    clearTimeout(this.#deadlineTimer);
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
    const reason = this.#controller.signal.reason as JobCancelledError | JobDeadlineError;
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
