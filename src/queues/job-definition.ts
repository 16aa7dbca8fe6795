import type { z } from "zod";
import type { JobContext } from "./job-context.js";

export type { JobContext } from "./job-context.js";

/** Transitional: a job file's schema and handler before it moves to src/jobs/<queue>/ (contract.ts + handler.ts). */
export interface JobDefinition<Schema extends z.ZodType = z.ZodType, Result = unknown> {
  queue: string;
  payloadSchema: Schema;
  handle(payload: z.output<Schema>, context: JobContext): Promise<Result>;
}

export function defineJob<Schema extends z.ZodType, Result>(definition: JobDefinition<Schema, Result>): JobDefinition<Schema, Result> {
  return definition;
}
