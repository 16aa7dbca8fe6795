import { Command } from "commander";
import { isMutatingVerb, requireCliOperator } from "./cli-operator.js";
import { registerAuditCommand } from "./commands/audit.js";
import { registerCancelCommand } from "./commands/cancel.js";
import { registerCleanCommand } from "./commands/clean.js";
import { registerDashboardCommand } from "./commands/dashboard.js";
import { registerDbReportCommand } from "./commands/db-report.js";
import { registerEnqueueCommand } from "./commands/enqueue.js";
import { registerFailedCommand } from "./commands/failed.js";
import { registerHashPasswordCommand } from "./commands/hash-password.js";
import { registerJobCommand } from "./commands/job.js";
import { registerJobsCommand } from "./commands/jobs.js";
import { registerMigrateCommand } from "./commands/migrate.js";
import { registerPauseResumeCommands } from "./commands/pause-resume.js";
import { registerRecipientsCommand } from "./commands/recipients.js";
import { registerRelayCommand } from "./commands/relay.js";
import { registerRetryCommand } from "./commands/retry.js";
import { registerScaleCommand } from "./commands/scale.js";
import { registerSchedulerCommand } from "./commands/scheduler.js";
import { registerSchedulesCommand } from "./commands/schedules.js";
import { registerSearchCommand } from "./commands/search.js";
import { registerSeedDemoCommand } from "./commands/seed-demo.js";
import { registerStatusCommand } from "./commands/status.js";
import { registerWorkerCommand } from "./commands/worker.js";
import { createCliContext } from "./context.js";

/** The `dbjobs` program with every verb; a mutating verb first checks the caller's role (cli-operator.ts). */
export function buildProgram(): Command {
  const program = new Command("dbjobs")
    .description("Background jobs for Prisma + PostgreSQL apps, on BullMQ")
    .showHelpAfterError()
    .configureOutput({ outputError: (text, write) => write(text) });

  registerMigrateCommand(program);
  registerWorkerCommand(program);
  registerEnqueueCommand(program);
  registerRecipientsCommand(program);
  registerStatusCommand(program);
  registerSeedDemoCommand(program);
  registerDbReportCommand(program);
  registerSchedulerCommand(program);
  registerRelayCommand(program);
  registerSchedulesCommand(program);
  registerJobsCommand(program);
  registerJobCommand(program);
  registerRetryCommand(program);
  registerFailedCommand(program);
  registerPauseResumeCommands(program);
  registerCleanCommand(program);
  registerCancelCommand(program);
  registerScaleCommand(program);
  registerDashboardCommand(program);
  registerSearchCommand(program);
  registerAuditCommand(program);
  registerHashPasswordCommand(program);

  program.hook("preAction", async (_program, verb) => {
    if (!isMutatingVerb(verb)) return;
    const context = createCliContext({ quiet: true });
    try {
      await requireCliOperator(verb, context);
    } finally {
      await context.close();
    }
  });
  return program;
}
