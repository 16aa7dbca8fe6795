import type { Command } from "commander";
import { failedJobs, groupFailures } from "../../queues/failure-groups.js";
import { createCliContext, printJson } from "../context.js";
import { firstLine, summariseJob } from "../job-view.js";
import { parseLimit, withQueues } from "../operator-queues.js";

export function registerFailedCommand(program: Command): void {
  program
    .command("failed")
    .description("failed jobs of a queue; --group groups them by error fingerprint (class + normalised message) with counts")
    .argument("<queue>", "queue name")
    .option("--group", "group by error fingerprint")
    .option("--limit <n>", "failed jobs to read (newest first)", "10000")
    .option("--json", "print JSON")
    .action(async (queueName: string, options: { group?: boolean; limit: string; json?: boolean }) => {
      const limit = parseLimit(options.limit);
      await withQueues(createCliContext({ quiet: true }), async (queues) => {
        const jobs = await failedJobs(await queues.open(queueName), limit);
        if (!options.group) {
          const summaries = jobs.map((job) => summariseJob(job, "failed"));
          if (options.json) printJson({ queue: queueName, jobs: summaries });
          else if (summaries.length === 0) console.log(`no failed jobs in ${queueName}`);
          else
            console.table(
              summaries.map((job) => ({ id: job.id, fingerprint: job.fingerprint, finished: job.finishedAt, error: firstLine(job.failedReason, 70) })),
            );
          return;
        }
        const groups = groupFailures(jobs);
        if (options.json) {
          printJson({ queue: queueName, failedJobs: jobs.length, groups });
          return;
        }
        if (groups.length === 0) {
          console.log(`no failed jobs in ${queueName}`);
          return;
        }
        console.table(
          groups.map((group) => ({
            fingerprint: group.fingerprint,
            count: group.count,
            class: group.errorClass,
            message: firstLine(group.normalisedMessage, 70),
            lastFailed: group.lastFailedAt,
          })),
        );
        console.log(`retry one group with: dbjobs retry ${queueName} --fingerprint <fingerprint>`);
      });
    });
}
