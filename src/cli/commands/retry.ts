import type { Command } from "commander";
import { audited } from "../../audit/audited.js";
import { retryFailedJobs } from "../../queues/retry-failed.js";
import { cliActor } from "../cli-operator.js";
import { createCliContext, printJson } from "../context.js";
import { BadArgumentError } from "../operator-errors.js";
import { withQueues } from "../operator-queues.js";

export function registerRetryCommand(program: Command): void {
  program
    .command("retry")
    .description("retry failed jobs: one by id, --all, or one --fingerprint group (see `dbjobs failed <queue> --group`)")
    .argument("<queue>", "queue name")
    .argument("[id]", "job id")
    .option("--all", "retry every failed job")
    .option("--fingerprint <fingerprint>", "retry the failed jobs of one error group")
    .option("--json", "print JSON")
    .action(async (queueName: string, id: string | undefined, options: { all?: boolean; fingerprint?: string; json?: boolean }) => {
      const chosen = [id !== undefined, Boolean(options.all), options.fingerprint !== undefined].filter(Boolean).length;
      if (chosen !== 1) {
        throw new BadArgumentError(`Say what to retry: \`dbjobs retry ${queueName} <job id>\`, \`--all\`, or \`--fingerprint F\` (one of them).`);
      }
      const context = createCliContext({ quiet: true });
      const target =
        id !== undefined ? `${queueName}/${id}` : options.fingerprint !== undefined ? `${queueName} fingerprint ${options.fingerprint}` : queueName;
      const parameters = {
        queue: queueName,
        ...(id !== undefined ? { jobId: id } : {}),
        ...(options.all ? { all: true } : {}),
        ...(options.fingerprint !== undefined ? { fingerprint: options.fingerprint } : {}),
      };
      const audit = { actor: cliActor(context.config), source: "cli" as const, action: "retry", target, parameters };
      await withQueues(context, (queues) =>
        audited(context.db().pool, audit, async () => {
          const queue = await queues.open(queueName);
          let retried: string[];
          if (id !== undefined) {
            const job = await queues.job(queueName, id);
            const state = await job.getState();
            if (state !== "failed") throw new BadArgumentError(`Job "${id}" in queue "${queueName}" is ${state}, not failed; only failed jobs can be retried.`);
            await job.retry("failed");
            retried = [id];
          } else {
            retried = await retryFailedJobs(queue, options.fingerprint === undefined ? {} : { fingerprint: options.fingerprint });
          }
          if (options.json) printJson({ queue: queueName, retried: retried.length, jobIds: retried });
          else console.log(`retried ${retried.length} job${retried.length === 1 ? "" : "s"} in ${queueName}`);
          return { value: undefined, affected: retried.length };
        }),
      );
    });
}
