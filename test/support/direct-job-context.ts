import { randomUUID } from "node:crypto";
import type { Job } from "bullmq";
import type { Config } from "../../src/lib/config.js";
import type { Db } from "../../src/lib/db.js";
import type { JobContext } from "../../src/queues/job-definition.js";
import { memoryLogger } from "./test-env.js";

/**
 * A JobContext for calling a handler directly, as the worker would, on a real
 * database but without Redis: for tests that count statements or inspect
 * progress. Progress reports and log lines are kept for assertions.
 */
export function directJobContext(db: Db, config: Config, options: { logLevel?: string } = {}) {
  const progress: Record<string, unknown>[] = [];
  const memory = memoryLogger(options.logLevel ?? "warn");
  const context: JobContext = {
    job: { id: randomUUID() } as Job,
    log: memory.logger,
    db,
    redis: undefined as never,
    config,
    prefix: config.QUEUE_PREFIX,
    invalidateCache: async () => undefined,
    reportProgress: async (value) => {
      progress.push(value as Record<string, unknown>);
    },
  };
  return { context, progress, lines: memory.lines };
}
