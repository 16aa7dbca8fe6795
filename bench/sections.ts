import { archivingBench } from "./archiving.js";
import type { BenchSection } from "./bench-section.js";
import { bulkMessagingBench } from "./bulk-messaging.js";
import { cacheBench } from "./cache.js";
import { cancelLatencyBench } from "./cancel-latency.js";
import { fairnessBench } from "./fairness.js";
import { historyBench } from "./history.js";
import { importTimeBench } from "./import-time.js";
import { invoiceTotalsBench } from "./invoice-totals.js";
import { noopWorkerBench } from "./noop-worker.js";
import { partitionRescueBench } from "./partition-rescue.js";
import { queueBackendsBench } from "./queue-backends.js";
import { scalingBench } from "./scaling.js";
import { transactionRetryBench } from "./transaction-retry.js";
import { transactionalEnqueueBench } from "./transactional-enqueue.js";

/** Every section of `npm run bench`, in order. Add one line per section. */
export const benchSections: BenchSection[] = [
  importTimeBench,
  noopWorkerBench,
  invoiceTotalsBench,
  bulkMessagingBench,
  cacheBench,
  transactionRetryBench,
  archivingBench,
  partitionRescueBench,
  queueBackendsBench,
  transactionalEnqueueBench,
  historyBench,
  cancelLatencyBench,
  scalingBench,
  fairnessBench,
];
