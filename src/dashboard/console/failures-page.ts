import { isQueueName } from "../../queues/contracts.js";
import { type FailureGroup, failedJobs, groupFailures } from "../../queues/failure-groups.js";
import { retryFailedJobs, UnknownFailureGroupError } from "../../queues/retry-failed.js";
import { csrfField } from "../csrf.js";
import { html } from "./html.js";
import { definePage, FormError } from "./page.js";

/**
 * Failures: each queue's failed jobs grouped by error fingerprint, with
 * counts, first and last seen, and (for operators) "Retry this group", which
 * does what `dbjobs retry <queue> --fingerprint F` does.
 */
interface QueueFailures {
  queue: string;
  failedJobs: number;
  groups: FailureGroup[];
}

/** Failed jobs read per queue for the page. */
const MAX_READ = 10_000;

const fingerprintPattern = /^[0-9a-f]{6,64}$/;

function notice(query: Record<string, string>) {
  if (query.retried !== undefined && query.queue)
    return html`<p class="notice" role="status">Retried ${query.retried} job(s) of group <code>${query.fingerprint ?? ""}</code> in ${query.queue}; they are waiting again.</p>`;
  if (query.gone !== undefined && query.queue)
    return html`<p class="error" role="status">Group <code>${query.gone}</code> in ${query.queue} has no failed jobs left (retried or removed meanwhile).</p>`;
  return "";
}

export const failuresPage = definePage<QueueFailures[]>({
  path: "/failures",
  title: "Failures",
  async load(services) {
    const result: QueueFailures[] = [];
    for (const queue of services.queues) {
      const jobs = await failedJobs(queue, MAX_READ);
      result.push({ queue: queue.name, failedJobs: jobs.length, groups: groupFailures(jobs) });
    }
    return result;
  },
  render(queues, view, request) {
    const total = queues.reduce((sum, queue) => sum + queue.failedJobs, 0);
    const withFailures = queues.filter((queue) => queue.failedJobs > 0);
    const retryForm = (queue: string, group: FailureGroup) =>
      view.mayAct
        ? html`<form method="post" action="${view.basePath}/failures/retry">
<input type="hidden" name="${csrfField}" value="${view.csrfToken}">
<input type="hidden" name="queue" value="${queue}"><input type="hidden" name="fingerprint" value="${group.fingerprint}">
<button type="submit" data-fingerprint="${group.fingerprint}">Retry this group</button></form>`
        : html`<span class="muted">read-only</span>`;
    return html`${notice(request.query)}
<p>${total} failed job(s) in ${withFailures.length} queue(s), grouped by error class and normalised message (up to ${MAX_READ} newest per queue).</p>
${withFailures.map(
  (entry) => html`<h2>${entry.queue} <span class="muted">(${entry.failedJobs} failed)</span></h2>
<table>
<thead><tr><th>fingerprint</th><th>count</th><th>error</th><th>example</th><th>first seen</th><th>last seen</th><th></th></tr></thead>
<tbody>${entry.groups.map(
    (group) => html`<tr data-fingerprint="${group.fingerprint}">
<td><code>${group.fingerprint}</code></td><td class="num">${group.count}</td>
<td><code>${group.errorClass}</code>: ${group.normalisedMessage.slice(0, 200)}</td>
<td>${group.example.split("\n", 1)[0]?.slice(0, 200)}</td>
<td>${group.firstFailedAt ?? "-"}</td><td>${group.lastFailedAt ?? "-"}</td>
<td>${retryForm(entry.queue, group)}</td></tr>`,
  )}</tbody>
</table>
<p class="muted">From a terminal: <code>dbjobs failed ${entry.queue} --group</code>, <code>dbjobs retry ${entry.queue} --fingerprint &lt;fingerprint&gt;</code></p>`,
)}`;
  },
  actions: [
    {
      path: "/failures/retry",
      intent(services, form) {
        const { queue = "", fingerprint = "" } = form;
        if (!isQueueName(queue) || !services.queues.some((candidate) => candidate.name === queue)) {
          throw new FormError(`Unknown queue "${queue}"; submit the form from the Failures page.`);
        }
        if (!fingerprintPattern.test(fingerprint)) throw new FormError(`"${fingerprint}" is not a fingerprint; submit the form from the Failures page.`);
        // As `dbjobs retry <queue> --fingerprint F` names it in the audit log.
        return { action: "retry", target: `${queue} fingerprint ${fingerprint}`, parameters: { queue, fingerprint } };
      },
      async handle(services, intent) {
        const { queue: queueName, fingerprint } = intent.parameters as { queue: string; fingerprint: string };
        const queue = services.queues.find((candidate) => candidate.name === queueName);
        if (!queue) throw new FormError(`Unknown queue "${queueName}".`);
        try {
          const retried = await retryFailedJobs(queue, { fingerprint });
          const query = new URLSearchParams({ queue: queueName, fingerprint, retried: String(retried.length) });
          return { redirectTo: `/failures?${query}`, affected: retried.length };
        } catch (err) {
          if (!(err instanceof UnknownFailureGroupError)) throw err;
          return { redirectTo: `/failures?${new URLSearchParams({ queue: queueName, gone: fingerprint })}`, affected: 0 };
        }
      },
    },
  ],
});
