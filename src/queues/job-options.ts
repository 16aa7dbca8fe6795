import type { JobsOptions } from "bullmq";
import { DbjobsError } from "../lib/errors.js";

/**
 * Job options dbjobs adds to BullMQ's, and the checks on those operators set
 * from the CLI and HTTP as well as in code.
 */
export interface EnqueueOptions extends JobsOptions {
  /**
   * How long one attempt may run before it is stopped like a cancel and fails
   * with JOB_DEADLINE (retried while attempts remain). Overrides the queue's
   * own (its contract's worker.deadlineMs). @defaultValue the queue's, else none
   */
  deadlineMs?: number;
}

/** BullMQ's priorities: 1 is the highest; a job without one runs before any prioritized job. */
export const priorityRange = { min: 1, max: 2_097_152 } as const;
export const deadlineRange = { min: 100, max: 7 * 24 * 3600 * 1000 } as const;

export class InvalidJobOptionError extends DbjobsError {
  readonly option: string;

  constructor(option: string, message: string) {
    super("DBJOBS_INVALID_OPTION", `Invalid job option ${option}: ${message}. Nothing was enqueued.`, { retryable: false });
    this.option = option;
  }
}

/** Throws an InvalidJobOptionError naming the option and the range it must be in. */
export function checkEnqueueOptions(options: Pick<EnqueueOptions, "priority" | "deadlineMs">): void {
  const { priority, deadlineMs } = options;
  if (priority !== undefined && (!Number.isInteger(priority) || priority < priorityRange.min || priority > priorityRange.max)) {
    throw new InvalidJobOptionError(
      "priority",
      `${String(priority)} is not a whole number from ${priorityRange.min} (highest) to ${priorityRange.max} (lowest); leave it out for "before any prioritized job"`,
    );
  }
  if (deadlineMs !== undefined && (!Number.isInteger(deadlineMs) || deadlineMs < deadlineRange.min || deadlineMs > deadlineRange.max)) {
    throw new InvalidJobOptionError(
      "deadlineMs",
      `${String(deadlineMs)} is not a whole number of milliseconds from ${deadlineRange.min} to ${deadlineRange.max} (7 days)`,
    );
  }
}

/** A whole-number option as the CLI gives it ("5"); anything else is refused by name. */
export function parseOptionNumber(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^-?\d+$/.test(text.trim())) throw new InvalidJobOptionError(option, `"${text}" is not a whole number`);
  return Number(text.trim());
}
