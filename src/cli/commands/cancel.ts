import type { Command } from "commander";
import { cancelJob } from "../../queues/cancel-job.js";
import { cliActor } from "../cli-operator.js";
import { createCliContext, printJson } from "../context.js";
import { parseDurationMs, withQueues } from "../operator-queues.js";

export function registerCancelCommand(program: Command): void {
  program
    .command("cancel")
    .description("cancel a job: remove it if it has not started, else stop it on the worker running it (its statements are cancelled and roll back)")
    .argument("<queue>", "queue name")
    .argument("<id>", "job id")
    .option("--wait <duration>", "how long to wait for a running job to stop", "10s")
    .option("--json", "print JSON")
    .action(async (queue: string, id: string, options: { wait: string; json?: boolean }) => {
      const waitMs = parseDurationMs(options.wait, "--wait");
      const context = createCliContext({ quiet: true });
      await withQueues(context, async (queues) => {
        const outcome = await cancelJob({
          store: queues.store,
          connectTimeoutMs: context.config.QUEUE_CONNECT_TIMEOUT_MS,
          logger: context.logger,
          queue,
          jobId: id,
          actor: cliActor(context.config),
          via: "cli",
          waitMs,
          audit: context.db().pool,
        });
        if (options.json) printJson(outcome);
        else if (outcome.outcome === "removed") console.log(`job ${id} had not started (${outcome.stateBefore}); removed`);
        else if (outcome.outcome === "cancelled") console.log(`job ${id} cancelled after ${outcome.waitedMs} ms: ${outcome.failedReason ?? ""}`);
        else if (outcome.outcome === "completed") console.log(`job ${id} completed before the cancel reached it`);
        if (outcome.outcome === "still-active") {
          process.stderr.write(
            `job ${id} is still active after ${outcome.waitedMs} ms: no worker stopped it. Is its worker running and connected? Try again, or wait for its lock to expire.\n`,
          );
          process.exitCode = 1;
        }
      });
    });
}
