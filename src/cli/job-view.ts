import type { Job } from "bullmq";
import { fingerprintFailure } from "../lib/error-fingerprint.js";
import { isCancelledFailure } from "../queues/job-stop.js";
import { isoTime } from "./operator-queues.js";

/** How the operator verbs print a job: what it was given, how far it got, and why it failed. */
export interface JobSummary {
  id: string;
  name: string;
  state: string;
  attemptsMade: number;
  maxAttempts: number;
  createdAt: string | null;
  processedAt: string | null;
  finishedAt: string | null;
  progress: unknown;
  failedReason: string | null;
  fingerprint: string | null;
}

export function summariseJob(job: Job, state: string): JobSummary {
  return {
    id: String(job.id),
    name: job.name,
    // Failed by an operator's cancel: shown apart from jobs that failed on their own.
    state: state === "failed" && isCancelledFailure(job.failedReason) ? "cancelled" : state,
    attemptsMade: job.attemptsMade,
    maxAttempts: job.opts.attempts ?? 1,
    createdAt: isoTime(job.timestamp),
    processedAt: isoTime(job.processedOn),
    finishedAt: isoTime(job.finishedOn),
    progress: job.progress,
    failedReason: job.failedReason ?? null,
    fingerprint: job.failedReason ? fingerprintFailure(job.failedReason, job.stacktrace).fingerprint : null,
  };
}

export function firstLine(text: string | null, width = 80): string {
  if (!text) return "";
  const line = text.split("\n", 1)[0] ?? "";
  return line.length > width ? `${line.slice(0, width - 1)}…` : line;
}

/**
 * A payload or result cut down for a terminal: arrays keep their first
 * `maxItems` entries and say how many more there are, long strings are cut.
 * A 100,000-recipient campaign then prints in a dozen lines; `--full` and
 * `--json` print everything.
 */
export function truncateForDisplay(value: unknown, limits = { maxItems: 10, maxString: 200 }): { value: unknown; truncated: boolean } {
  let truncated = false;
  const walk = (item: unknown): unknown => {
    if (typeof item === "string" && item.length > limits.maxString) {
      truncated = true;
      return `${item.slice(0, limits.maxString)}… (${item.length - limits.maxString} more characters)`;
    }
    if (Array.isArray(item)) {
      const kept = item.slice(0, limits.maxItems).map(walk);
      if (item.length <= limits.maxItems) return kept;
      truncated = true;
      return [...kept, `… ${item.length - limits.maxItems} more`];
    }
    if (item && typeof item === "object") return Object.fromEntries(Object.entries(item).map(([key, entry]) => [key, walk(entry)]));
    return item;
  };
  return { value: walk(value), truncated };
}
