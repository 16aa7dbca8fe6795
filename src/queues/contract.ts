import type { JobsOptions } from "bullmq";
import type { z } from "zod";

/**
 * A queue's contract: what producers, the scheduler, the CLI and the
 * dashboard know about it, and nothing of how it runs. Only the worker
 * runtime pairs a contract with its handler (src/queues/handlers.ts), so
 * importing a contract never loads Prisma, pg or any handler.
 */
export interface WorkerSettings {
  /** Jobs one worker process runs at once. */
  concurrency: number;
  /** How long a job may run before BullMQ considers it stalled unless renewed. @defaultValue 30000 */
  lockDurationMs?: number;
  /**
   * How long one attempt may run before the runtime stops it as a cancel does
   * (its statements cancelled, its transaction rolled back) and fails it with
   * JOB_DEADLINE, which is retried while attempts remain. A job's own
   * `deadlineMs` enqueue option overrides it. @defaultValue none
   */
  deadlineMs?: number;
}

/** How the queue's finished jobs are kept in the job history (dbjobs.job_history). */
export interface HistorySettings {
  /**
   * Top-level payload fields holding personal data: stored as "[redacted]",
   * so they can be neither read nor searched in the history. List them in
   * docs/jobs.md. @defaultValue []
   */
  redact: readonly string[];
}

export interface QueueContract<Name extends string = string, Schema extends z.ZodType = z.ZodType, Result = unknown> {
  name: Name;
  /** Every default is a zod `.default()`, so the handler receives the payload it really runs with. */
  payload: Schema;
  /** Merged over `defaultJobOptions`. */
  jobOptions: JobsOptions;
  worker: WorkerSettings;
  /** @defaultValue nothing redacted */
  history?: HistorySettings;
  /** Collapses jobs enqueued close together (BullMQ deduplication); see deduplicationOptions in producer.ts. */
  deduplicate?(payload: z.output<Schema>): { id: string; ttlMs: number } | undefined;
  /** Type only: what the handler returns. Never set at run time. */
  readonly result?: Result;
}

/** Retention keeps the queue store bounded; failed jobs stay longer for operators. */
export const defaultJobOptions: JobsOptions = {
  attempts: 3,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 1000 },
  removeOnFail: { age: 30 * 24 * 3600, count: 5000 },
};

/**
 * Declares a contract. Curried so the result type can be named while the
 * name and schema types are inferred: `defineContract<Result>()({ ... })`.
 */
export function defineContract<Result>() {
  return <const Name extends string, Schema extends z.ZodType>(
    contract: Omit<QueueContract<Name, Schema, Result>, "jobOptions" | "result"> & { jobOptions?: JobsOptions },
  ): QueueContract<Name, Schema, Result> => ({ ...contract, jobOptions: { ...defaultJobOptions, ...contract.jobOptions } });
}

export type PayloadOf<C extends QueueContract> = z.output<C["payload"]>;
export type PayloadInputOf<C extends QueueContract> = z.input<C["payload"]>;
export type ResultOf<C extends QueueContract> = C extends QueueContract<string, z.ZodType, infer R> ? R : never;
