import type { Command } from "commander";
import { fingerprintFailure } from "../../lib/error-fingerprint.js";
import { createCliContext, printJson } from "../context.js";
import { summariseJob, truncateForDisplay } from "../job-view.js";
import { withQueues } from "../operator-queues.js";

export function registerJobCommand(program: Command): void {
  program
    .command("job")
    .description("one job: payload, state, attempts, progress, result, the error with its stack, and its logs")
    .argument("<queue>", "queue name")
    .argument("<id>", "job id")
    .option("--json", "print JSON (the whole payload and result)")
    .option("--full", "print the whole payload and result; by default long arrays and strings are cut")
    .action(async (queueName: string, id: string, options: { json?: boolean; full?: boolean }) => {
      await withQueues(createCliContext({ quiet: true }), async (queues) => {
        const job = await queues.job(queueName, id);
        const queue = await queues.open(queueName);
        const [state, logs] = await Promise.all([job.getState(), queue.getJobLogs(id, 0, 999, true)]);
        const fingerprint = job.failedReason ? fingerprintFailure(job.failedReason, job.stacktrace) : null;
        const detail = {
          ...summariseJob(job, state),
          queue: queueName,
          payload: job.data,
          result: job.returnvalue ?? null,
          errorClass: fingerprint?.errorClass ?? null,
          stacktrace: job.stacktrace ?? [],
          delayMs: job.delay,
          logs: logs.logs,
        };
        if (options.json) {
          printJson(detail);
          return;
        }
        console.log(`${queueName} job ${detail.id} (${detail.name}): ${detail.state}`);
        console.log(`attempts: ${detail.attemptsMade}/${detail.maxAttempts}`);
        console.log(`created: ${detail.createdAt}  processed: ${detail.processedAt ?? "-"}  finished: ${detail.finishedAt ?? "-"}`);
        console.log(`progress: ${JSON.stringify(detail.progress)}`);
        const shown = (value: unknown) => (options.full ? { value, truncated: false } : truncateForDisplay(value));
        const payload = shown(detail.payload);
        console.log(`payload: ${JSON.stringify(payload.value, null, 2)}`);
        const result = shown(detail.result);
        if (detail.result !== null) console.log(`result: ${JSON.stringify(result.value, null, 2)}`);
        if (payload.truncated || result.truncated) console.log("(cut for the terminal; --full prints everything)");
        if (detail.failedReason) {
          console.log(`error (${detail.errorClass}, fingerprint ${detail.fingerprint}): ${detail.failedReason}`);
          const stack = detail.stacktrace.at(-1);
          if (stack) console.log(stack);
        }
        if (detail.logs.length) console.log(`logs:\n${detail.logs.map((line) => `  ${line}`).join("\n")}`);
      });
    });
}
