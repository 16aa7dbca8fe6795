import { setSchedulePaused, triggerSchedule, UnknownScheduleError } from "../../queues/schedule-controls.js";
import type { ScheduleHealth } from "../../queues/schedule-health.js";
import type { DashboardPrincipal } from "../credentials.js";
import { csrfField } from "../csrf.js";
import { html } from "./html.js";
import { type ActionResult, type ConsoleAction, type ConsoleServices, definePage, FormError, type PageView } from "./page.js";

/**
 * Schedules: what `dbjobs schedules` prints (src/queues/schedule-health.ts):
 * each cron schedule declared in code and/or registered with BullMQ, whether
 * it is paused, its last and next fire, and the fires it missed. Rows needing
 * attention are marked. Operators get Trigger and Pause/Resume per declared
 * schedule, the same controls as `dbjobs schedules trigger|pause|resume`.
 */
const iso = (millis: number | null) => (millis ? new Date(millis).toISOString() : "-");

const scheduleIdPattern = /^[a-z0-9][a-z0-9-]{0,99}$/;

function notice(query: Record<string, string>) {
  const { schedule, done, queue, jobId, problem } = query;
  if (!schedule) return "";
  if (problem) return html`<p class="error" role="status">Schedule <code>${schedule}</code>: ${problem}</p>`;
  if (done === "triggered")
    return html`<p class="notice" role="status">Schedule <code>${schedule}</code> triggered: ${queue ?? "?"} job <code>${jobId ?? "?"}</code> enqueued; its next fire is unchanged.</p>`;
  if (done === "paused" || done === "resumed" || done === "already paused" || done === "already resumed")
    return html`<p class="notice" role="status">Schedule <code>${schedule}</code> ${done}.</p>`;
  return "";
}

function controlForm(view: PageView, action: "trigger" | "pause" | "resume", id: string) {
  const label = { trigger: "Trigger", pause: "Pause", resume: "Resume" }[action];
  return html`<form method="post" action="${view.basePath}/schedules/${action}" style="display:inline">
<input type="hidden" name="${csrfField}" value="${view.csrfToken}"><input type="hidden" name="id" value="${id}">
<button type="submit" data-schedule="${id}">${label}</button></form>`;
}

function controls(view: PageView, item: ScheduleHealth) {
  if (!item.declared) return "";
  if (!view.mayAct) return html`<span class="muted">read-only</span>`;
  return html`${controlForm(view, "trigger", item.id)} ${controlForm(view, item.paused ? "resume" : "pause", item.id)}`;
}

function scheduleIntent(action: string) {
  return (_services: unknown, form: Record<string, string>) => {
    const id = form.id ?? "";
    if (!scheduleIdPattern.test(id)) throw new FormError(`"${id.slice(0, 100)}" is not a schedule id; submit the form from the Schedules page.`);
    // As `dbjobs schedules <verb> <id>` names it in the audit log.
    return { action, target: id, parameters: { id } };
  };
}

const back = (fields: Record<string, string>) => `/schedules?${new URLSearchParams(fields)}`;

/** A schedule that is not (or no longer) declared is a notice on the page, not a 500. */
async function unknownShownOnPage(id: string, act: () => Promise<ActionResult>): Promise<ActionResult> {
  try {
    return await act();
  } catch (err) {
    if (err instanceof UnknownScheduleError) return { redirectTo: back({ schedule: id, problem: err.message }), affected: 0 };
    throw err;
  }
}

/** What both schedule actions tell the schedule controls about who acts, and through what. */
function asOperator(services: ConsoleServices, principal: DashboardPrincipal) {
  return { config: services.config, logger: services.logger, actor: principal.name, via: "http" as const };
}

const triggerAction: ConsoleAction = {
  path: "/schedules/trigger",
  auditsItself: true,
  intent: scheduleIntent("schedule.trigger"),
  async handle(services, intent, principal) {
    const id = intent.target;
    return unknownShownOnPage(id, async () => {
      const run = await triggerSchedule({ ...asOperator(services, principal), producer: services.producer, id, audit: services.db.pool });
      return { redirectTo: back({ schedule: id, done: "triggered", queue: run.queue, jobId: run.jobId }), affected: 1 };
    });
  },
};

function pauseAction(paused: boolean): ConsoleAction {
  return {
    path: paused ? "/schedules/pause" : "/schedules/resume",
    auditsItself: true,
    intent: scheduleIntent(paused ? "schedule.pause" : "schedule.resume"),
    async handle(services, intent, principal) {
      const id = intent.target;
      return unknownShownOnPage(id, async () => {
        const outcome = await setSchedulePaused({ ...asOperator(services, principal), pool: services.db.pool, id, paused });
        const verb = paused ? "paused" : "resumed";
        return { redirectTo: back({ schedule: id, done: outcome.changed ? verb : `already ${verb}` }), affected: 0 };
      });
    },
  };
}

export const schedulesPage = definePage<ScheduleHealth[]>({
  path: "/schedules",
  title: "Schedules",
  load: (services) => services.readSchedules(),
  render(schedules, view, request) {
    const notRegistered = schedules.filter((item) => item.declared && !item.registered);
    const missing = schedules.filter((item) => item.missedFires > 0);
    return html`${notice(request.query)}
${
  notRegistered.length
    ? html`<p class="error">${notRegistered.length} declared schedule(s) not registered: is <code>dbjobs scheduler</code> running, and are their cron overrides valid?</p>`
    : ""
}
${missing.length ? html`<p class="error">${missing.length} schedule(s) missed fires in the last 24 hours: check that their workers run.</p>` : ""}
<table>
<thead><tr><th>schedule</th><th>queue</th><th>cron (UTC)</th><th>declared</th><th>registered</th><th>state</th><th>last fire</th><th>next fire</th><th>missed fires</th><th></th></tr></thead>
<tbody>${schedules.map(
      (
        item,
      ) => html`<tr class="${item.missedFires > 0 || item.declared !== item.registered ? "warn" : ""}" data-schedule="${item.id}" data-paused="${item.paused ? "yes" : "no"}">
<td>${item.id}</td><td>${item.queue}</td><td><code>${item.cron}</code></td>
<td>${item.declared ? "yes" : "no"}</td><td>${item.registered ? "yes" : "no"}</td>
<td class="schedule-state">${item.paused ? html`<strong>paused</strong>` : "active"}</td>
<td>${iso(item.lastFireAt)}</td><td>${iso(item.nextFireAt)}</td><td class="num">${item.missedFires}</td><td>${controls(view, item)}</td></tr>`,
    )}</tbody>
</table>
<p class="muted">Missed fires: times the cron pattern expected since registration (within 24 hours) that produced no job; a paused schedule misses none. Trigger runs the job once now without moving the next fire. From a terminal: <code>dbjobs schedules</code>, <code>dbjobs schedules trigger|pause|resume &lt;id&gt;</code>.</p>`;
  },
  actions: [triggerAction, pauseAction(true), pauseAction(false)],
});
