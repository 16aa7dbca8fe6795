/**
 * Which tables db-maintenance takes. Without `tables`, a run covers the
 * application's tables in schema public. Internal tables, those of the
 * machinery rather than the application, are left out then and taken only
 * when a payload names them:
 * - Prisma's migration ledger, `_prisma_migrations`;
 * - the queue backend's own tables (BullMQ's PostgreSQL backend keeps them in
 *   schema `bullmq`), named schema-qualified, e.g. "bullmq.jobs";
 * - dbjobs' own bookkeeping: schema `dbjobs`, or tables named `dbjobs_*`.
 *
 * No imports: the job's contract, which producers load, reads these too.
 */
export const applicationSchema = "public";
export const internalSchemas: readonly string[] = ["bullmq", "dbjobs"];
export const internalTableNames: readonly string[] = ["_prisma_migrations"];
export const internalTablePrefix = "dbjobs_";
