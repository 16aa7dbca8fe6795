import { HistoryQueryError, type HistoryQueryInput, parseHistoryQuery } from "../../history/history-query.js";
import { type HistoryPage, searchHistory } from "../../history/search-history.js";
import { rowsTable } from "./data-view.js";
import { html } from "./html.js";
import { cancellableStates } from "./job-cancel.js";
import { type LiveJob, liveJob, liveJobsTable } from "./jobs-page.js";
import { type ConsoleServices, definePage } from "./page.js";

/**
 * Search: the job history (src/history/), by the same filters as `dbjobs
 * search`, newest first, one page at a time. A bad filter shows its message
 * above the form instead of failing the page.
 */
/** A searched job id that has not finished yet is not in the history: it is read live, with a Cancel button for operators. */
async function liveJobsWithId(services: ConsoleServices, id: string, queueName: string | undefined): Promise<LiveJob[]> {
  const found: LiveJob[] = [];
  for (const queue of services.queues) {
    if (queueName && queue.name !== queueName) continue;
    const job = await queue.getJob(id);
    const state = job ? await job.getState() : undefined;
    if (job && state && (cancellableStates as readonly string[]).includes(state)) found.push(liveJob(queue.name, job, state));
  }
  return found;
}

const filters = ["queue", "state", "since", "until", "fingerprint", "error", "id", "limit"] as const;

export const searchPage = definePage<{ page?: HistoryPage; error?: string; searched: boolean; live?: LiveJob[] }>({
  path: "/search",
  title: "Search",
  async load(services, request) {
    const input: HistoryQueryInput = { fields: (request.queryAll.field ?? []).filter((field) => field.trim() !== "") };
    for (const name of filters) if (request.query[name]) input[name] = request.query[name];
    if (request.query.cursor) input.cursor = request.query.cursor;
    const searched = Object.keys(request.query).length > 0;
    if (!searched) return { searched };
    const live = request.query.id ? await liveJobsWithId(services, request.query.id, request.query.queue) : [];
    try {
      return { searched, live, page: await searchHistory(services.db.pool, parseHistoryQuery(input)) };
    } catch (err) {
      if (err instanceof HistoryQueryError) return { searched, live, error: err.message };
      throw err;
    }
  },
  render(result, view, request) {
    const next = new URLSearchParams();
    for (const [key, values] of Object.entries(request.queryAll)) if (key !== "cursor") for (const value of values) next.append(key, value);
    if (result.page?.nextCursor) next.set("cursor", result.page.nextCursor);
    return html`<form method="get" action="${view.basePath}/search">
<label>payload field <input name="field" value="${request.queryAll.field?.[0] ?? ""}" placeholder="patientId=…"></label>
${filters.map((name) => html`<label>${name} <input name="${name}" value="${request.query[name] ?? ""}" size="12"></label> `)}
<button type="submit">Search</button></form>
${result.error ? html`<p class="error">${result.error}</p>` : ""}
${result.live?.length ? html`<h2>Not finished yet</h2>${liveJobsTable(result.live, view)}` : ""}
${
  result.page
    ? html`${rowsTable(
        result.page.entries.map((entry) => ({
          finishedAt: entry.finishedAt,
          queue: entry.queue,
          jobId: entry.jobId,
          state: entry.state,
          attempts: entry.attempts,
          fingerprint: entry.errorFingerprint,
          error: entry.errorMessage?.split("\n", 1)[0]?.slice(0, 200) ?? null,
          payload: entry.payload,
        })),
        { rowClass: (row) => (row.state === "failed" ? "warn" : undefined) },
      )}
${result.page.nextCursor ? html`<p><a href="${view.basePath}/search?${next.toString()}">Older results</a></p>` : ""}`
    : ""
}`;
  },
});
