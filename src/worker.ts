/**
 * dbjobs for worker processes and tools (`dbjobs/worker`): the worker
 * runtime with every handler, migrations, the database handle and the
 * conflict-retry helper. This entry loads Prisma and pg.
 */

export { createDb, type Db, type DbOptions } from "./lib/db.js";
export { createLogger, type Logger } from "./lib/logger.js";
export { migrate } from "./lib/migrate.js";
export { backoffDelayMs, isWriteConflict, retryOnConflict, withConflictRetry } from "./lib/retry.js";
export { handlers } from "./queues/handlers.js";
export type { JobContext, JobHandler, WorkerServices } from "./queues/job-context.js";
export { migrateForConfig } from "./queues/migrate-all.js";
export { type RunningWorker, type StartWorkerOptions, startWorker } from "./queues/start-worker.js";
