import type { Command } from "commander";
import { createCliContext, printJson } from "../context.js";
import { firstLine, type JobSummary, summariseJob } from "../job-view.js";
import { type ListableState, listableStates, parseLimit, parseState, withQueues } from "../operator-queues.js";

export function registerJobsCommand(program: Command): void {
  program
    .command("jobs")
    .description("list a queue's jobs, newest first, in one state or in all")
    .argument("<queue>", "queue name")
    .option("--state <state>", `one of ${listableStates.join(", ")} (default: every state)`)
    .option("--limit <n>", "jobs to list", "20")
    .option("--json", "print JSON")
    .action(async (queueName: string, options: { state?: string; limit: string; json?: boolean }) => {
      const states: ListableState[] = options.state ? [parseState(options.state, listableStates)] : [...listableStates];
      const limit = parseLimit(options.limit);
      await withQueues(createCliContext({ quiet: true }), async (queues) => {
        const queue = await queues.open(queueName);
        const jobs: JobSummary[] = [];
        for (const state of states) {
          const found = await queue.getJobs(state, 0, limit - 1, false);
          for (const job of found) if (job) jobs.push(summariseJob(job, state));
        }
        jobs.sort((a, b) => (b.createdAt ?? "").localeCompare(a.createdAt ?? ""));
        const shown = jobs.slice(0, limit);
        if (options.json) {
          printJson({ queue: queueName, states, jobs: shown });
          return;
        }
        if (shown.length === 0) {
          console.log(`no ${options.state ?? ""} jobs in ${queueName}`.replace("  ", " "));
          return;
        }
        console.table(
          shown.map((job) => ({
            id: job.id,
            state: job.state,
            attempts: `${job.attemptsMade}/${job.maxAttempts}`,
            created: job.createdAt,
            finished: job.finishedAt ?? "",
            error: firstLine(job.failedReason, 60),
          })),
        );
      });
    });
}
