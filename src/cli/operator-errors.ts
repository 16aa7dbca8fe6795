import { DbjobsError } from "../lib/errors.js";

/** Errors of the operator CLI; each message says what to run instead. */
export class UnknownJobError extends DbjobsError {
  constructor(queue: string, jobId: string) {
    super(
      "DBJOBS_UNKNOWN_JOB",
      `No job "${jobId}" in queue "${queue}" (it may never have existed or was removed by retention). List jobs with \`dbjobs jobs ${queue} --state failed\`.`,
    );
  }
}

export class BadJobStateError extends DbjobsError {
  constructor(state: string, allowed: readonly string[]) {
    super("DBJOBS_BAD_STATE", `Unknown state "${state}". Use one of: ${allowed.join(", ")}.`);
  }
}

export class BadArgumentError extends DbjobsError {
  constructor(message: string) {
    super("DBJOBS_BAD_ARGUMENT", message);
  }
}
