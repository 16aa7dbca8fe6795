import type { Command } from "commander";
import { type CacheStatsSnapshot, readCacheStats } from "../../cache/cache-stats.js";
import { getContract, queueNames } from "../../queues/contracts.js";
import { readAllQueueConcurrency } from "../../queues/queue-settings.js";
import { createCliContext, printJson } from "../context.js";
import { formatAge, withQueues } from "../operator-queues.js";

export interface QueueStatus {
  queue: string;
  waiting: number;
  active: number;
  delayed: number;
  prioritized: number;
  failed: number;
  completed: number;
  paused: boolean;
  /** Worker connections BullMQ sees on this queue (CLIENT LIST). */
  workers: number;
  oldestWaitingAgeMs: number | null;
  /** Jobs completed in the last 60 seconds. */
  jobsPerMinute: number;
  /** Jobs failed in the last 60 seconds. */
  failedPerMinute: number;
  /** Jobs each worker process runs at once: set by `dbjobs scale`, else the configured one. */
  concurrency: number;
  /** "scaled" when `dbjobs scale` set it, "configured" otherwise (WORKER_CONCURRENCY, else the queue's own). */
  concurrencySource: "scaled" | "configured";
}

export function registerStatusCommand(program: Command): void {
  program
    .command("status")
    .description("per queue: waiting, active, delayed, failed, completed, paused, workers, oldest waiting age, jobs per minute; cache hits and misses")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const context = createCliContext({ quiet: true });
      await withQueues(context, async (queues) => {
        const minuteAgo = Date.now() - 60_000;
        // Without the table (no `dbjobs migrate` since job control), every queue shows its configured concurrency.
        const scaled = await readAllQueueConcurrency(context.db().pool).catch(() => new Map<string, number>());
        const statuses: QueueStatus[] = [];
        for (const name of queueNames) {
          const queue = await queues.open(name);
          const [counts, paused, workers, oldest, jobsPerMinute, failedPerMinute] = await Promise.all([
            queue.getJobCounts("waiting", "active", "delayed", "prioritized", "failed", "completed"),
            queue.isPaused(),
            queue.getWorkersCount(),
            queue.getJobs("waiting", 0, 0, true),
            queues.store.finishedSince(name, "completed", minuteAgo),
            queues.store.finishedSince(name, "failed", minuteAgo),
          ]);
          statuses.push({
            queue: name,
            waiting: counts.waiting ?? 0,
            active: counts.active ?? 0,
            delayed: counts.delayed ?? 0,
            prioritized: counts.prioritized ?? 0,
            failed: counts.failed ?? 0,
            completed: counts.completed ?? 0,
            paused,
            workers,
            oldestWaitingAgeMs: oldest[0] ? Date.now() - oldest[0].timestamp : null,
            jobsPerMinute,
            failedPerMinute,
            concurrency: scaled.get(name) ?? context.config.WORKER_CONCURRENCY ?? getContract(name).worker.concurrency,
            concurrencySource: scaled.has(name) ? "scaled" : "configured",
          });
        }
        let cache: CacheStatsSnapshot | null = null;
        try {
          cache = await readCacheStats(queues.store.metrics());
        } catch {
          // Cache figures are a bonus; the queue table is what status is for.
        }
        if (options.json) {
          printJson({ queues: statuses, cache });
          return;
        }
        console.table(
          statuses.map((status) => ({
            queue: status.queue,
            waiting: status.waiting,
            active: status.active,
            delayed: status.delayed + status.prioritized,
            failed: status.failed,
            completed: status.completed,
            paused: status.paused ? "yes" : "",
            workers: status.workers,
            concurrency: `${status.concurrency}${status.concurrencySource === "scaled" ? " (scaled)" : ""}`,
            oldestWaiting: formatAge(status.oldestWaitingAgeMs),
            "jobs/min": status.jobsPerMinute,
          })),
        );
        if (cache && cache.total.l1Hits + cache.total.l2Hits + cache.total.misses > 0) {
          const { total } = cache;
          console.log(
            `cache: ${total.l1Hits} memory hits, ${total.l2Hits} Redis hits, ${total.misses} misses (hit rate ${(total.hitRate * 100).toFixed(1)}%), ${total.loads} loads`,
          );
        }
      });
    });
}
