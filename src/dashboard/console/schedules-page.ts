import type { ScheduleHealth } from "../../queues/schedule-health.js";
import { html } from "./html.js";
import { definePage } from "./page.js";

/**
 * Schedules: what `dbjobs schedules` prints (src/queues/schedule-health.ts):
 * each cron schedule declared in code and/or registered with BullMQ, its last
 * and next fire, and the fires it missed. Rows needing attention are marked.
 */
const iso = (millis: number | null) => (millis ? new Date(millis).toISOString() : "-");

export const schedulesPage = definePage<ScheduleHealth[]>({
  path: "/schedules",
  title: "Schedules",
  load: (services) => services.readSchedules(),
  render(schedules) {
    const notRegistered = schedules.filter((item) => item.declared && !item.registered);
    const missing = schedules.filter((item) => item.missedFires > 0);
    return html`${
      notRegistered.length
        ? html`<p class="error">${notRegistered.length} declared schedule(s) not registered: is <code>dbjobs scheduler</code> running, and are their cron overrides valid?</p>`
        : ""
    }
${missing.length ? html`<p class="error">${missing.length} schedule(s) missed fires in the last 24 hours: check that their workers run.</p>` : ""}
<table>
<thead><tr><th>schedule</th><th>queue</th><th>cron (UTC)</th><th>declared</th><th>registered</th><th>last fire</th><th>next fire</th><th>missed fires</th></tr></thead>
<tbody>${schedules.map(
      (item) => html`<tr class="${item.missedFires > 0 || item.declared !== item.registered ? "warn" : ""}" data-schedule="${item.id}">
<td>${item.id}</td><td>${item.queue}</td><td><code>${item.cron}</code></td>
<td>${item.declared ? "yes" : "no"}</td><td>${item.registered ? "yes" : "no"}</td>
<td>${iso(item.lastFireAt)}</td><td>${iso(item.nextFireAt)}</td><td class="num">${item.missedFires}</td></tr>`,
    )}</tbody>
</table>
<p class="muted">Missed fires: times the cron pattern expected since registration (within 24 hours) that produced no job. From a terminal: <code>dbjobs schedules</code>.</p>`;
  },
});
