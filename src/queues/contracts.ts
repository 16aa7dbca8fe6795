import { archivingContract } from "../jobs/archiving/contract.js";
import { bulkMessagingContract } from "../jobs/bulk-messaging/contract.js";
import { cachePrefetchContract } from "../jobs/cache-prefetch/contract.js";
import { dbMaintenanceContract } from "../jobs/db-maintenance/contract.js";
import { invoiceTotalsContract } from "../jobs/invoice-totals/contract.js";
import { partitionMaintenanceContract } from "../jobs/partition-maintenance/contract.js";
import { transactionRetryContract } from "../jobs/transaction-retry/contract.js";
import { UnknownQueueError } from "../lib/errors.js";
import type { PayloadInputOf, PayloadOf, ResultOf } from "./contract.js";

/**
 * Every queue, written once. Queue names, payload types and result types are
 * derived from this list; the worker's handler map is checked against it.
 */
export const contracts = [
  bulkMessagingContract,
  invoiceTotalsContract,
  partitionMaintenanceContract,
  archivingContract,
  dbMaintenanceContract,
  cachePrefetchContract,
  transactionRetryContract,
] as const;

export type Contract = (typeof contracts)[number];
export type QueueName = Contract["name"];
export type ContractOf<Q extends QueueName> = Extract<Contract, { name: Q }>;
export type PayloadInput<Q extends QueueName> = PayloadInputOf<ContractOf<Q>>;
export type Payload<Q extends QueueName> = PayloadOf<ContractOf<Q>>;
export type JobResult<Q extends QueueName> = ResultOf<ContractOf<Q>>;

export const queueNames: readonly QueueName[] = contracts.map((contract) => contract.name);

export function isQueueName(name: string): name is QueueName {
  return contracts.some((contract) => contract.name === name);
}

/** The contract of a queue, or an UnknownQueueError listing the known queues. */
export function getContract<Q extends QueueName>(name: Q): ContractOf<Q>;
export function getContract(name: string): Contract;
export function getContract(name: string): Contract {
  const contract = contracts.find((candidate) => candidate.name === name);
  if (!contract) throw new UnknownQueueError(name, queueNames);
  return contract;
}
