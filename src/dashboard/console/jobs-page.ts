import type { Job } from "bullmq";
import { html } from "./html.js";
import { cancelForm, cancelJobAction, cancellableStates, cancelNotice } from "./job-cancel.js";
import { definePage, type PageView } from "./page.js";

/**
 * Jobs: the jobs that have not finished (active, waiting, delayed,
 * prioritized), read live from each queue, since the history (Search) only
 * holds finished ones. Operators get a Cancel button on each row; the outcome
 * of the last cancel is shown on top.
 */
export interface LiveJob {
  queue: string;
  id: string;
  state: string;
  name: string;
  enqueuedAt: number;
  startedAt: number | null;
  attemptsMade: number;
  payload: string;
}

/** Jobs read per queue and state: the page is for acting on a few, `dbjobs jobs` lists more. */
const PER_STATE = 50;

const iso = (millis: number | null | undefined) => (millis ? new Date(millis).toISOString() : "-");

export function liveJob(queue: string, job: Job, state: string): LiveJob {
  return {
    queue,
    id: String(job.id),
    state,
    name: job.name,
    enqueuedAt: job.timestamp,
    startedAt: job.processedOn ?? null,
    attemptsMade: job.attemptsMade,
    payload: JSON.stringify(job.data ?? null).slice(0, 200),
  };
}

export function liveJobsTable(jobs: readonly LiveJob[], view: PageView) {
  if (jobs.length === 0) return html`<p class="muted">(none)</p>`;
  return html`<table>
<thead><tr><th>queue</th><th>job id</th><th>state</th><th>name</th><th>enqueued</th><th>started</th><th>attempts</th><th>payload</th><th></th></tr></thead>
<tbody>${jobs.map(
    (job) => html`<tr data-job="${job.queue}/${job.id}" data-state="${job.state}">
<td>${job.queue}</td><td><code>${job.id}</code></td><td>${job.state}</td><td>${job.name}</td>
<td>${iso(job.enqueuedAt)}</td><td>${iso(job.startedAt)}</td><td class="num">${job.attemptsMade}</td><td><code>${job.payload}</code></td>
<td>${cancelForm(view, job.queue, job.id)}</td></tr>`,
  )}</tbody>
</table>`;
}

export const jobsPage = definePage<LiveJob[]>({
  path: "/jobs",
  title: "Jobs",
  async load(services, request) {
    const only = request.query.queue;
    const jobs: LiveJob[] = [];
    for (const queue of services.queues) {
      if (only && queue.name !== only) continue;
      for (const state of cancellableStates) {
        for (const job of await queue.getJobs(state, 0, PER_STATE - 1, false)) if (job) jobs.push(liveJob(queue.name, job, state));
      }
    }
    return jobs;
  },
  render(jobs, view, request) {
    return html`${cancelNotice(request.query)}
<p>${jobs.length} job(s) not finished yet (up to ${PER_STATE} per queue and state). Finished jobs are on the <a href="${view.basePath}/search">Search</a> page.</p>
${liveJobsTable(jobs, view)}
<p class="muted">From a terminal: <code>dbjobs jobs &lt;queue&gt; --state active</code>, <code>dbjobs cancel &lt;queue&gt; &lt;id&gt;</code></p>`;
  },
  actions: [cancelJobAction],
});
