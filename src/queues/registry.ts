import type { JobsOptions } from "bullmq";
import type { z } from "zod";
import { archivingJob } from "../jobs/archiving.js";
import { bulkMessagingJob } from "../jobs/bulk-messaging.js";
import { cachePrefetchJob } from "../jobs/cache-prefetch.js";
import { dbMaintenanceJob } from "../jobs/db-maintenance.js";
import { invoiceTotalsJob } from "../jobs/invoice-totals.js";
import { partitionMaintenanceJob } from "../jobs/partition-maintenance.js";
import { transactionRetryJob } from "../jobs/transaction-retry.js";
import { UnknownQueueError } from "../lib/errors.js";
import type { JobDefinition, QueueSettings } from "./job-definition.js";

/**
 * The one place that answers "what queues exist and what do they take":
 * each queue's job definition, worker settings and default job options.
 */
export const queueNames = [
  "bulk-messaging",
  "invoice-totals",
  "partition-maintenance",
  "archiving",
  "db-maintenance",
  "cache-prefetch",
  "transaction-retry",
] as const;

export type QueueName = (typeof queueNames)[number];

/** Retention keeps Redis bounded; failed jobs stay longer for operators. */
export const defaultJobOptions: JobsOptions = {
  attempts: 3,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 1000 },
  removeOnFail: { age: 30 * 24 * 3600, count: 5000 },
};

export interface QueueEntry {
  name: QueueName;
  // biome-ignore lint/suspicious/noExplicitAny: each entry keeps its own payload and result types
  job: JobDefinition<z.ZodType, any>;
  settings: QueueSettings;
  jobOptions: JobsOptions;
}

function queueEntry<S extends z.ZodType, R>(job: JobDefinition<S, R>, settings: QueueSettings) {
  return {
    name: job.queue as QueueName,
    job,
    settings,
    jobOptions: { ...defaultJobOptions, ...settings.jobOptions },
  };
}

export const registry = {
  "bulk-messaging": queueEntry(bulkMessagingJob, { concurrency: 2, lockDurationMs: 30_000, jobOptions: { attempts: 8 } }),
  "invoice-totals": queueEntry(invoiceTotalsJob, { concurrency: 2, jobOptions: { attempts: 5 } }),
  "partition-maintenance": queueEntry(partitionMaintenanceJob, { concurrency: 1 }),
  // Long runs: the lock is renewed while the job runs; one run at a time per process (an advisory lock covers the rest).
  archiving: queueEntry(archivingJob, { concurrency: 1, lockDurationMs: 60_000 }),
  "db-maintenance": queueEntry(dbMaintenanceJob, { concurrency: 1, lockDurationMs: 60_000, jobOptions: { attempts: 2 } }),
  "cache-prefetch": queueEntry(cachePrefetchJob, { concurrency: 1, jobOptions: { attempts: 2 } }),
  // Two sweeps may overlap (a slow sweep and the next minute's); their claims are disjoint.
  "transaction-retry": queueEntry(transactionRetryJob, { concurrency: 2, lockDurationMs: 60_000 }),
} satisfies Record<QueueName, QueueEntry>;

type Registry = typeof registry;
export type PayloadInput<Q extends QueueName> = Registry[Q] extends { job: JobDefinition<infer S, unknown> } ? z.input<S> : never;
export type JobResult<Q extends QueueName> = Registry[Q] extends { job: JobDefinition<z.ZodType, infer R> } ? R : never;

export function isQueueName(name: string): name is QueueName {
  return (queueNames as readonly string[]).includes(name);
}

/** The registry entry of a queue, or an UnknownQueueError listing the known queues. */
export function getQueueEntry(name: string): QueueEntry {
  if (!isQueueName(name)) throw new UnknownQueueError(name, queueNames);
  return registry[name];
}
