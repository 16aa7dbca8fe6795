import { handleArchiving } from "../jobs/archiving/handler.js";
import { handleBulkMessaging } from "../jobs/bulk-messaging/handler.js";
import { handleCachePrefetch } from "../jobs/cache-prefetch/handler.js";
import { handleDbMaintenance } from "../jobs/db-maintenance/handler.js";
import { handleInvoiceTotals } from "../jobs/invoice-totals/handler.js";
import { handlePartitionMaintenance } from "../jobs/partition-maintenance/handler.js";
import { handleTransactionRetry } from "../jobs/transaction-retry/handler.js";
import type { ContractOf, QueueName } from "./contracts.js";
import type { JobHandler } from "./job-context.js";

/**
 * The handler of every queue. Only the worker runtime imports this map: it
 * is what loads Prisma, pg and the jobs' code. `satisfies` checks that each
 * queue has a handler taking its contract's payload and returning its result.
 */
export const handlers = {
  "bulk-messaging": handleBulkMessaging,
  "invoice-totals": handleInvoiceTotals,
  "partition-maintenance": handlePartitionMaintenance,
  archiving: handleArchiving,
  "db-maintenance": handleDbMaintenance,
  "cache-prefetch": handleCachePrefetch,
  "transaction-retry": handleTransactionRetry,
} satisfies { [Q in QueueName]: JobHandler<ContractOf<Q>> };
