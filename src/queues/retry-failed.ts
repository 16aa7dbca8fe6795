import type { Job } from "bullmq";
import { DbjobsError } from "../lib/errors.js";
import type { AnyQueue } from "../lib/queue-store.js";
import { failedJobs, groupFailures } from "./failure-groups.js";

/**
 * Moves failed jobs back to waiting: every failed job of a queue, or one
 * fingerprint group of them. Shared by `dbjobs retry` and the console's
 * "Retry this group"; safe to run twice (a job already retried or removed by
 * someone else meanwhile is skipped, not an error).
 */

/** Failed jobs read at most, for a whole queue or one group. */
export const MAX_RETRIED = 100_000;

export class UnknownFailureGroupError extends DbjobsError {
  constructor(queue: string, fingerprint: string) {
    super(
      "DBJOBS_UNKNOWN_FAILURE_GROUP",
      `No failed jobs in "${queue}" have fingerprint "${fingerprint}" (retried or removed meanwhile?). List the groups with \`dbjobs failed ${queue} --group\`.`,
    );
  }
}

async function retryEach(jobs: Job[]): Promise<string[]> {
  const retried: string[] = [];
  for (const job of jobs) {
    try {
      await job.retry("failed");
      retried.push(String(job.id));
    } catch {
      // Retried or removed by someone else meanwhile: nothing left to do for it.
    }
  }
  return retried;
}

/** Retries the failed jobs of `queue`, all of them or only those of one fingerprint; returns the ids retried. */
export async function retryFailedJobs(queue: AnyQueue, filter: { fingerprint?: string } = {}): Promise<string[]> {
  const jobs = await failedJobs(queue, MAX_RETRIED);
  if (filter.fingerprint === undefined) return retryEach(jobs);
  const group = groupFailures(jobs).find((item) => item.fingerprint === filter.fingerprint);
  if (!group) throw new UnknownFailureGroupError(queue.name, filter.fingerprint);
  const ids = new Set(group.jobIds);
  return retryEach(jobs.filter((job) => ids.has(String(job.id))));
}
