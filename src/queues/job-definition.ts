import type { Job, JobsOptions } from "bullmq";
import type { Redis } from "ioredis";
import type { z } from "zod";
import type { Config } from "../lib/config.js";
import type { Db } from "../lib/db.js";
import type { Logger } from "../lib/logger.js";

/** What a handler gets besides its payload. */
export interface JobContext {
  job: Job;
  /** Child logger carrying `{ queue, jobId }`. */
  log: Logger;
  db: Db;
  /** The worker's Redis connection (blocking-safe: `maxRetriesPerRequest: null`). */
  redis: Redis;
  config: Config;
  /** BullMQ key prefix of this process. */
  prefix: string;
  /** Removes keys from Redis and from every process's in-memory cache tier. */
  invalidateCache(keys: string[]): Promise<void>;
  /** Reports progress to BullMQ; never throws (a lost progress update must not fail the job). */
  reportProgress(progress: number | object): Promise<void>;
}

export interface JobDefinition<Schema extends z.ZodType = z.ZodType, Result = unknown> {
  queue: string;
  payloadSchema: Schema;
  handle(payload: z.output<Schema>, context: JobContext): Promise<Result>;
  /** Collapses jobs enqueued close together (BullMQ deduplication). */
  deduplicate?(payload: z.output<Schema>): { id: string; ttlMs: number } | undefined;
}

export function defineJob<Schema extends z.ZodType, Result>(definition: JobDefinition<Schema, Result>): JobDefinition<Schema, Result> {
  return definition;
}

export interface QueueSettings {
  /** Jobs one worker process runs at once. */
  concurrency: number;
  /** Merged over the defaults in registry.ts. */
  jobOptions?: JobsOptions;
  /** How long a job may run before BullMQ considers it stalled unless renewed. @defaultValue 30000 */
  lockDurationMs?: number;
}
