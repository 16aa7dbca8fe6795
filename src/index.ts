/**
 * dbjobs for producer applications: the queues' contracts and the typed
 * producer. Importing this entry loads neither Prisma nor pg nor any job
 * handler; worker-side code lives under `dbjobs/worker`, the two-tier cache
 * under `dbjobs/cache`.
 *
 *   import { Producer } from "dbjobs";
 *   const producer = new Producer({ redisUrl: process.env.REDIS_URL });
 *   await producer.enqueue("invoice-totals", { invoiceIds: [id] });
 *   // or in the application's own transaction:
 *   await prisma.$transaction(async (tx) => producer.enqueue("invoice-totals", { invoiceIds: [id] }, { tx }));
 */

export {
  type ArchivingDryRunResult,
  type ArchivingPayload,
  type ArchivingResult,
  archivingContract,
  archivingPayload,
  finalStatuses,
} from "./jobs/archiving/contract.js";
export { type BulkMessagingPayload, type BulkMessagingResult, bulkMessagingContract, bulkMessagingPayload } from "./jobs/bulk-messaging/contract.js";
export { RecipientListError, type StagedRecipientList } from "./jobs/bulk-messaging/recipient-lists.js";
export {
  type CachePrefetchPayload,
  type CachePrefetchResult,
  cachePrefetchContract,
  cachePrefetchPayload,
  type PrefetchKind,
  prefetchKinds,
} from "./jobs/cache-prefetch/contract.js";
export { type DbMaintenancePayload, type DbMaintenanceResult, dbMaintenanceContract, dbMaintenancePayload } from "./jobs/db-maintenance/contract.js";
export { type InvoiceTotalsPayload, type InvoiceTotalsResult, invoiceTotalsContract, invoiceTotalsPayload } from "./jobs/invoice-totals/contract.js";
export {
  type PartitionMaintenancePayload,
  type PartitionMaintenanceResult,
  partitionMaintenanceContract,
  partitionMaintenancePayload,
} from "./jobs/partition-maintenance/contract.js";
export {
  defaultSettlementMode,
  type SettlementMode,
  settlementModes,
  type TransactionRetryPayload,
  type TransactionRetryResult,
  transactionRetryContract,
  transactionRetryPayload,
} from "./jobs/transaction-retry/contract.js";
export { type Config, loadConfig } from "./lib/config.js";
export { ConfigError, DbjobsError, PayloadValidationError, UnknownQueueError } from "./lib/errors.js";
export { type StartTracingOptions, shutdownTracing, startTracing, type Tracing } from "./lib/tracing.js";
export { defaultJobOptions, type QueueContract, type WorkerSettings } from "./queues/contract.js";
export {
  type Contract,
  type ContractOf,
  contracts,
  getContract,
  isQueueName,
  type JobResult,
  type Payload,
  type PayloadInput,
  type QueueName,
  queueNames,
} from "./queues/contracts.js";
export {
  type EnqueuedInTransaction,
  type EnqueueInTransactionOptions,
  Producer,
  type ProducerOptions,
  type TransactionClient,
} from "./queues/producer.js";
export { NotInTransactionError } from "./queues/transactional-enqueue.js";
export { JobWaitError, waitForJob } from "./queues/wait-for-job.js";
