import type { Command } from "commander";
import { setSchedulePaused, triggerSchedule } from "../../queues/schedule-controls.js";
import { readScheduleHealth } from "../../queues/schedule-health.js";
import { cliActor } from "../cli-operator.js";
import { createCliContext, printJson } from "../context.js";
import { isoTime, withQueues } from "../operator-queues.js";

export function registerSchedulesCommand(program: Command): void {
  const schedules = program
    .command("schedules")
    .description("cron schedules: declared vs registered, paused, last and next fire, missed fires; `schedules trigger|pause|resume <id>`")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const context = createCliContext({ quiet: true });
      await withQueues(context, async (queues) => {
        const health = await readScheduleHealth({ store: queues.store, config: context.config, pool: context.db().pool });
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
            paused: item.paused ? "paused" : "",
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
  registerScheduleControlCommands(schedules);
}

function registerScheduleControlCommands(schedules: Command): void {
  // `schedules` has --json of its own, and commander gives it a parent's option wherever it appears.
  const json = (options: { json?: boolean }) => options.json === true || schedules.opts().json === true;
  schedules
    .command("trigger")
    .description("run a schedule's job once now; its next fire stays where it was")
    .argument("<id>", "schedule id (see `dbjobs schedules`)")
    .option("--json", "print JSON")
    .action(async (id: string, options: { json?: boolean }) => {
      const context = createCliContext({ quiet: true });
      try {
        const producer = context.producer();
        const outcome = await triggerSchedule({
          config: context.config,
          logger: context.logger,
          producer,
          id,
          actor: cliActor(context.config),
          via: "cli",
          audit: context.db().pool,
        });
        if (json(options)) printJson(outcome);
        else console.log(`schedule ${id}: enqueued ${outcome.queue} job ${outcome.jobId}; next fire unchanged`);
      } finally {
        await context.close();
      }
    });
  for (const paused of [true, false]) {
    schedules
      .command(paused ? "pause" : "resume")
      .description(paused ? "pause a schedule: its fires are skipped and not counted as missed" : "resume a paused schedule")
      .argument("<id>", "schedule id (see `dbjobs schedules`)")
      .option("--json", "print JSON")
      .action(async (id: string, options: { json?: boolean }) => {
        const context = createCliContext({ quiet: true });
        try {
          const outcome = await setSchedulePaused({
            config: context.config,
            logger: context.logger,
            pool: context.db().pool,
            id,
            paused,
            actor: cliActor(context.config),
            via: "cli",
          });
          if (json(options)) printJson(outcome);
          else console.log(`schedule ${id}: ${paused ? "paused" : "resumed"}${outcome.changed ? "" : " (it already was)"}`);
        } finally {
          await context.close();
        }
      });
  }
}
