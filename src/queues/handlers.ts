import { handleArchiving } from "../jobs/archiving/handler.js";
import { bulkMessagingJob } from "../jobs/bulk-messaging.js";
import { cachePrefetchJob } from "../jobs/cache-prefetch.js";
import { dbMaintenanceJob } from "../jobs/db-maintenance.js";
import { invoiceTotalsJob } from "../jobs/invoice-totals.js";
import { handlePartitionMaintenance } from "../jobs/partition-maintenance/handler.js";
import { transactionRetryJob } from "../jobs/transaction-retry.js";
import type { ContractOf, QueueName } from "./contracts.js";
import type { JobHandler } from "./job-context.js";

/**
 * The handler of every queue. Only the worker runtime imports this map: it
 * is what loads Prisma, pg and the jobs' code. `satisfies` checks that each
 * queue has a handler taking its contract's payload and returning its result.
 */
export const handlers = {
  "bulk-messaging": bulkMessagingJob.handle,
  "invoice-totals": invoiceTotalsJob.handle,
  "partition-maintenance": handlePartitionMaintenance,
  archiving: handleArchiving,
  "db-maintenance": dbMaintenanceJob.handle,
  "cache-prefetch": cachePrefetchJob.handle,
  "transaction-retry": transactionRetryJob.handle,
} satisfies { [Q in QueueName]: JobHandler<ContractOf<Q>> };
