import type { Command } from "commander";
import { exitOnSignals } from "../../lib/shutdown.js";
import { startScheduler } from "../../queues/scheduler.js";
import { createCliContext } from "../context.js";

export function registerSchedulerCommand(program: Command): void {
  program
    .command("scheduler")
    .description("register the cron schedules (only one scheduler registers however many run; the others stand by) until SIGTERM")
    .action(async () => {
      const context = createCliContext();
      const scheduler = startScheduler({ config: context.config, logger: context.logger });
      exitOnSignals(() => scheduler.close(), { timeoutMs: context.config.SHUTDOWN_TIMEOUT_MS, logger: context.logger.child({ component: "scheduler" }) });
      await scheduler.ready;
    });
}
