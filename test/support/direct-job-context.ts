import { randomUUID } from "node:crypto";
import type { Job } from "bullmq";
import type { Config } from "../../src/lib/config.js";
import type { Db } from "../../src/lib/db.js";
import { getContract, type JobResult, type PayloadInput, type QueueName } from "../../src/queues/contracts.js";
import { handlers } from "../../src/queues/handlers.js";
import type { JobContext, WorkerServices } from "../../src/queues/job-context.js";
import { workerServices } from "../../src/queues/worker-services.js";
import { memoryLogger } from "./test-env.js";

/**
 * A JobContext for calling a handler directly, as the worker would, on a real
 * database but without Redis: for tests that count statements or inspect
 * progress. Progress reports and log lines are kept for assertions.
 */
export function directJobContext(db: Db, config: Config, options: { logLevel?: string; services?: Partial<WorkerServices> } = {}) {
  const progress: Record<string, unknown>[] = [];
  const memory = memoryLogger(options.logLevel ?? "warn");
  const context: JobContext = {
    job: { id: randomUUID() } as Job,
    log: memory.logger,
    db,
    signal: new AbortController().signal,
    redis: undefined as never,
    config,
    prefix: config.QUEUE_PREFIX,
    services: workerServices(config, options.services),
    invalidateCache: async () => undefined,
    reportProgress: async (value) => {
      progress.push(value as Record<string, unknown>);
    },
    // No queue: nobody waits, and nothing can be put back.
    postpone: async () => {
      throw new Error("a job run outside a worker cannot be postponed");
    },
    waitingJobs: async () => 0,
  };
  return { context, progress, lines: memory.lines };
}

/** Runs a queue's handler as the worker would: the payload is validated (defaults filled in) first. */
export function runHandler<Q extends QueueName>(queue: Q, payload: PayloadInput<Q>, context: JobContext): Promise<JobResult<Q>> {
  const handler = handlers[queue] as unknown as (payload: unknown, context: JobContext) => Promise<JobResult<Q>>;
  return handler(getContract(queue).payload.parse(payload), context);
}
