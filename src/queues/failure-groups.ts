import type { Job } from "bullmq";
import { type ErrorFingerprint, fingerprintFailure } from "../lib/error-fingerprint.js";
import type { AnyQueue } from "../lib/queue-store.js";

/**
 * Failed jobs of a queue grouped by error fingerprint, largest group first:
 * what `dbjobs failed --group` prints and the console's Failures page shows.
 */
export interface FailureGroup extends ErrorFingerprint {
  count: number;
  /** The newest failure's message as it was, before normalising. */
  example: string;
  firstFailedAt: string | null;
  lastFailedAt: string | null;
  jobIds: string[];
}

const PAGE_SIZE = 500;

/** Every failed job, newest first, at most `maxJobs`. */
export async function failedJobs(queue: AnyQueue, maxJobs: number): Promise<Job[]> {
  const jobs: Job[] = [];
  for (let start = 0; jobs.length < maxJobs; start += PAGE_SIZE) {
    const page = await queue.getFailed(start, Math.min(start + PAGE_SIZE, maxJobs) - 1);
    jobs.push(...page.filter((job): job is Job => Boolean(job)));
    if (page.length < PAGE_SIZE) break;
  }
  return jobs.slice(0, maxJobs);
}

export function groupFailures(jobs: Job[]): FailureGroup[] {
  const groups = new Map<string, FailureGroup>();
  for (const job of jobs) {
    const print = fingerprintFailure(job.failedReason, job.stacktrace);
    const finishedAt = job.finishedOn ? new Date(job.finishedOn).toISOString() : null;
    const group = groups.get(print.fingerprint);
    if (!group) {
      groups.set(print.fingerprint, {
        ...print,
        count: 1,
        example: job.failedReason ?? "",
        firstFailedAt: finishedAt,
        lastFailedAt: finishedAt,
        jobIds: [String(job.id)],
      });
      continue;
    }
    group.count += 1;
    group.jobIds.push(String(job.id));
    if (finishedAt && (!group.firstFailedAt || finishedAt < group.firstFailedAt)) group.firstFailedAt = finishedAt;
    if (finishedAt && (!group.lastFailedAt || finishedAt > group.lastFailedAt)) {
      group.lastFailedAt = finishedAt;
      group.example = job.failedReason ?? "";
    }
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || a.fingerprint.localeCompare(b.fingerprint));
}
