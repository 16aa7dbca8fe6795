import { setTimeout as sleep } from "node:timers/promises";
import type { Queryable } from "../audit/record-audit.js";
import { DbjobsError, UnknownQueueError } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import type { AnyQueue, QueueStore } from "../lib/queue-store.js";
import { isQueueName, queueNames } from "./contracts.js";
import { publishControl } from "./control-channel.js";
import { recordOperatorAction } from "./operator-actions.js";

/**
 * The one cancel behind `dbjobs cancel` and `POST /queues/<queue>/jobs/<id>/cancel`.
 *
 * - A job not yet running (waiting, delayed, prioritized) is removed.
 * - An active job is cancelled where it runs: a cancel request goes out on the
 *   control channel, the worker holding it aborts its signal and cancels its
 *   PostgreSQL statements, and the job fails with JOB_CANCELLED. The request is
 *   sent again every second until the job leaves `active` or `waitMs` passes
 *   (a worker that was reconnecting missed the first one).
 * - A finished job cannot be cancelled: a clear error says so.
 */
export interface CancelJobRequest {
  store: QueueStore;
  /** How long to wait for the queue store. */
  connectTimeoutMs: number;
  logger: Logger;
  queue: string;
  jobId: string;
  actor: string;
  via: "cli" | "http";
  /** How long to wait for an active job to stop. @defaultValue 10000 */
  waitMs?: number;
  /** The application database, to write the cancel to the audit log. */
  audit?: Queryable;
}

export interface CancelJobOutcome {
  queue: string;
  jobId: string;
  /**
   * removed: it had not started; cancelled: it was stopped while running;
   * completed: it finished before the cancel reached it; still-active: no worker stopped it within waitMs.
   */
  outcome: "removed" | "cancelled" | "completed" | "still-active";
  /** The job's state before, and after. */
  stateBefore: string;
  state: string;
  /** For a cancelled job: its failure message, saying what it had committed. */
  failedReason?: string;
  waitedMs: number;
}

export class JobNotFoundError extends DbjobsError {
  constructor(queue: string, jobId: string) {
    super(
      "DBJOBS_UNKNOWN_JOB",
      `No job "${jobId}" in queue "${queue}" (it may never have existed or was removed by retention). List jobs with \`dbjobs jobs ${queue}\`.`,
      {
        retryable: false,
      },
    );
  }
}

export class JobNotCancellableError extends DbjobsError {
  constructor(queue: string, jobId: string, state: string) {
    super("DBJOBS_NOT_CANCELLABLE", `Job "${jobId}" in queue "${queue}" is ${state}: it has already ended, so there is nothing to cancel.`, {
      retryable: false,
    });
  }
}

const notStartedStates = new Set(["waiting", "delayed", "prioritized", "waiting-children", "wait", "paused"]);

export async function cancelJob(request: CancelJobRequest): Promise<CancelJobOutcome> {
  const { store, queue: queueName, jobId } = request;
  if (!isQueueName(queueName)) throw new UnknownQueueError(queueName, queueNames);
  const started = Date.now();
  const queue = await store.queue(queueName);
  try {
    const outcome = await cancelIn(queue, request, started);
    await recordOperatorAction(
      {
        action: "cancel",
        target: `${queueName}/${jobId}`,
        actor: request.actor,
        via: request.via,
        detail: { outcome: outcome.outcome, stateBefore: outcome.stateBefore },
      },
      request.logger,
      request.audit,
    );
    return outcome;
  } finally {
    await queue.close();
  }
}

async function cancelIn(queue: AnyQueue, request: CancelJobRequest, started: number): Promise<CancelJobOutcome> {
  const { queue: queueName, jobId } = request;
  const job = await queue.getJob(jobId);
  if (!job) throw new JobNotFoundError(queueName, jobId);
  const stateBefore = await job.getState();
  const base = { queue: queueName, jobId, stateBefore };
  if (notStartedStates.has(stateBefore)) {
    try {
      await job.remove();
      return { ...base, outcome: "removed", state: "removed", waitedMs: Date.now() - started };
    } catch {
      // It started meanwhile (a locked job cannot be removed): cancel it where it runs.
    }
  } else if (stateBefore !== "active") {
    throw new JobNotCancellableError(queueName, jobId, stateBefore);
  }

  const waitMs = request.waitMs ?? 10_000;
  const reason = `by ${request.actor} (${request.via})`;
  let lastSent = 0;
  for (;;) {
    if (Date.now() - lastSent >= 1000) {
      lastSent = Date.now();
      await publishControl(request.store, { type: "cancel", queue: queueName, jobId, reason }, request.connectTimeoutMs);
    }
    await sleep(25);
    const state = await job.getState();
    if (state !== "active") {
      const finished = await queue.getJob(jobId);
      return {
        ...base,
        outcome: state === "failed" ? "cancelled" : state === "completed" ? "completed" : "removed",
        state: state === "unknown" ? "removed" : state,
        failedReason: finished?.failedReason,
        waitedMs: Date.now() - started,
      };
    }
    if (Date.now() - started >= waitMs) return { ...base, outcome: "still-active", state, waitedMs: Date.now() - started };
  }
}
