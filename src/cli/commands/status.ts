import type { Command } from "commander";
import { queueNames, registry } from "../../queues/registry.js";
import { createCliContext, printJson } from "../context.js";

export interface QueueStatus {
  queue: string;
  implemented: boolean;
  waiting?: number;
  active?: number;
  delayed?: number;
  failed?: number;
  completed?: number;
  paused?: boolean;
  workers?: number;
  oldestWaitingAgeMs?: number | null;
  jobsPerMinute?: number;
}

export function registerStatusCommand(program: Command): void {
  program
    .command("status")
    .description("per queue: waiting, active, delayed, failed, completed, paused, workers, oldest waiting age, jobs per minute")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const context = createCliContext({ quiet: true });
      try {
        const statuses: QueueStatus[] = [];
        for (const name of queueNames) {
          if (!registry[name].implemented) {
            statuses.push({ queue: name, implemented: false });
            continue;
          }
          const queue = context.producer().queue(name);
          const [counts, paused, workers, oldest, completedRecently] = await Promise.all([
            queue.getJobCounts("waiting", "active", "delayed", "failed", "completed"),
            queue.isPaused(),
            queue.getWorkersCount(),
            queue.getWaiting(-1, -1),
            queue.getCompleted(0, 199),
          ]);
          const minuteAgo = Date.now() - 60_000;
          statuses.push({
            queue: name,
            implemented: true,
            waiting: counts.waiting ?? 0,
            active: counts.active ?? 0,
            delayed: counts.delayed ?? 0,
            failed: counts.failed ?? 0,
            completed: counts.completed ?? 0,
            paused,
            workers,
            oldestWaitingAgeMs: oldest[0] ? Date.now() - oldest[0].timestamp : null,
            jobsPerMinute: completedRecently.filter((job) => (job.finishedOn ?? 0) >= minuteAgo).length,
          });
        }
        if (options.json) printJson({ queues: statuses });
        else console.table(statuses.map((status) => (status.implemented ? status : { queue: status.queue, implemented: "not implemented yet" })));
      } finally {
        await context.close();
      }
    });
}
