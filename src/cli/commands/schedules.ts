import type { Command } from "commander";
import { readScheduleHealth } from "../../queues/schedule-health.js";
import { createCliContext, printJson } from "../context.js";
import { isoTime, withQueues } from "../operator-queues.js";

export function registerSchedulesCommand(program: Command): void {
  program
    .command("schedules")
    .description("cron schedules: declared vs registered, last and next fire, missed fires")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const context = createCliContext({ quiet: true });
      await withQueues(context, async (queues) => {
        const health = await readScheduleHealth({ store: queues.store, config: context.config });
        if (options.json) {
          printJson({ schedules: health });
          return;
        }
        console.table(
          health.map((item) => ({
            id: item.id,
            queue: item.queue,
            cron: item.cron,
            declared: item.declared,
            registered: item.registered,
            lastFire: isoTime(item.lastFireAt) ?? "-",
            nextFire: isoTime(item.nextFireAt) ?? "-",
            missed: item.missedFires,
          })),
        );
        const notRunning = health.filter((item) => item.declared && !item.registered);
        if (notRunning.length)
          console.log(`${notRunning.length} declared schedule(s) not registered: is \`dbjobs scheduler\` running, and are their cron overrides valid?`);
      });
    });
}
