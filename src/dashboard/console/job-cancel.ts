import { UnknownQueueError } from "../../lib/errors.js";
import { cancelJob, JobNotCancellableError, JobNotFoundError } from "../../queues/cancel-job.js";
import { isQueueName } from "../../queues/contracts.js";
import { csrfField } from "../csrf.js";
import { type Html, html } from "./html.js";
import { type ConsoleAction, FormError, type PageView } from "./page.js";

/**
 * The console's Cancel button: the form shown on every row of a job that has
 * not finished, and the action behind it, which runs the same cancelJob as
 * `dbjobs cancel` and `POST /queues/<queue>/jobs/<id>/cancel`, writing the
 * same audit row with the dashboard user as actor. The browser is sent to the
 * Jobs page, which says how it ended.
 */
export const cancellableStates = ["active", "waiting", "delayed", "prioritized"] as const;

const jobIdPattern = /^\S{1,200}$/;

/** How long the request waits for a running job to stop, as the HTTP route's default. */
const CANCEL_WAIT_MS = 10_000;

export function cancelForm(view: PageView, queue: string, jobId: string): Html {
  if (!view.mayAct) return html`<span class="muted">read-only</span>`;
  return html`<form method="post" action="${view.basePath}/jobs/cancel">
<input type="hidden" name="${csrfField}" value="${view.csrfToken}">
<input type="hidden" name="queue" value="${queue}"><input type="hidden" name="jobId" value="${jobId}">
<button type="submit" data-job="${queue}/${jobId}">Cancel</button></form>`;
}

const outcomeText: Record<string, string> = {
  removed: "had not started; it was removed",
  cancelled: "was stopped on its worker; its statements were cancelled and rolled back",
  completed: "completed before the cancel reached it",
  "still-active": "is still active: no worker stopped it within 10 s. Is its worker running and connected? Try again.",
};

/** The outcome of the last cancel, from the query the action redirected with. */
export function cancelNotice(query: Record<string, string>): Html | "" {
  const { cancelled: jobId, cancelQueue: queue, outcome, stateBefore, reason, problem } = query;
  if (jobId === undefined || !queue) return "";
  if (problem) return html`<p class="error" role="status">Job <code>${jobId}</code> in ${queue} was not cancelled: ${problem}</p>`;
  const text = outcomeText[outcome ?? ""] ?? `ended as ${outcome}`;
  const cls = outcome === "still-active" ? "error" : "notice";
  return html`<p class="${cls}" role="status" data-outcome="${outcome ?? ""}">Job <code>${jobId}</code> in ${queue} (${stateBefore ?? "?"}) ${text}.${
    reason ? html` <span class="muted">${reason}</span>` : ""
  }</p>`;
}

export const cancelJobAction: ConsoleAction = {
  path: "/jobs/cancel",
  auditsItself: true,
  intent(services, form) {
    const { queue = "", jobId = "" } = form;
    if (!isQueueName(queue) || !services.queues.some((candidate) => candidate.name === queue)) {
      throw new FormError(`Unknown queue "${queue}"; submit the form from the Jobs page.`);
    }
    if (!jobIdPattern.test(jobId)) throw new FormError(`"${jobId.slice(0, 200)}" is not a job id; submit the form from the Jobs page.`);
    // As `dbjobs cancel <queue> <id>` names it in the audit log.
    return { action: "cancel", target: `${queue}/${jobId}`, parameters: { queue, jobId } };
  },
  async handle(services, intent, principal) {
    const { queue, jobId } = intent.parameters as { queue: string; jobId: string };
    const back = (fields: Record<string, string>) => `/jobs?${new URLSearchParams({ cancelled: jobId, cancelQueue: queue, ...fields })}`;
    try {
      const outcome = await cancelJob({
        store: services.producer.store,
        connectTimeoutMs: services.config.QUEUE_CONNECT_TIMEOUT_MS,
        logger: services.logger,
        queue,
        jobId,
        actor: principal.name,
        via: "http",
        waitMs: CANCEL_WAIT_MS,
        audit: services.db.pool,
      });
      const reason = outcome.failedReason?.slice(0, 300);
      return {
        redirectTo: back({ outcome: outcome.outcome, stateBefore: outcome.stateBefore, ...(reason ? { reason } : {}) }),
        affected: outcome.outcome === "removed" || outcome.outcome === "cancelled" ? 1 : 0,
      };
    } catch (err) {
      if (err instanceof JobNotFoundError || err instanceof JobNotCancellableError || err instanceof UnknownQueueError) {
        return { redirectTo: back({ problem: err.message }), affected: 0 };
      }
      throw err;
    }
  },
};
