import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Job } from "bullmq";
import { type Config, queueStoreOptions } from "../../src/lib/config.js";
import { createQueueStore } from "../../src/lib/queue-store.js";
import type { Producer } from "../../src/queues/producer.js";

/**
 * Failed invoice-totals jobs in two fingerprint groups, failed by a real
 * worker on the test's queue backend whose handler throws errors that differ
 * only in ids and numbers, as production errors do. The worker is closed
 * before this returns, so a retried job stays visibly waiting.
 */
export interface FailedGroups {
  /** Job ids that failed with `RangeError: invoice <uuid> has <n> lines over the limit`. */
  rangeErrors: string[];
  /** Job ids that failed with `Error: connection to "db-<n>" refused`. */
  refused: string[];
}

export async function failInvoiceJobs(config: Config, producer: Producer, counts: { rangeErrors: number; refused: number }): Promise<FailedGroups> {
  const rangeInvoices = new Set<string>(Array.from({ length: counts.rangeErrors }, () => randomUUID()));
  const refusedInvoices = new Set<string>(Array.from({ length: counts.refused }, () => randomUUID()));
  const failed = new Set<string>();
  const workerStore = createQueueStore({ ...queueStoreOptions(config), role: "worker", poolSize: 2 });
  const worker = await workerStore.worker(
    "invoice-totals",
    async (job: Job) => {
      const invoiceId = job.data.invoiceIds[0] as string;
      if (rangeInvoices.has(invoiceId)) throw new RangeError(`invoice ${invoiceId} has ${10 + Math.floor(Math.random() * 90)} lines over the limit`);
      if (refusedInvoices.has(invoiceId)) throw new Error(`connection to "db-${Math.floor(Math.random() * 9)}" refused`);
      return {};
    },
    { concurrency: 4 },
  );
  worker.on("failed", (job) => failed.add(String(job?.id)));
  const result: FailedGroups = { rangeErrors: [], refused: [] };
  try {
    for (const invoiceId of [...rangeInvoices, ...refusedInvoices]) {
      const job = await producer.enqueue("invoice-totals", { invoiceIds: [invoiceId] }, { attempts: 1 });
      (rangeInvoices.has(invoiceId) ? result.rangeErrors : result.refused).push(String(job.id));
    }
    const expected = counts.rangeErrors + counts.refused;
    const deadline = Date.now() + 60_000;
    while (failed.size < expected && Date.now() < deadline) await sleep(100);
    if (failed.size < expected) throw new Error(`only ${failed.size} of ${expected} jobs failed within 60 s`);
  } finally {
    await worker.close();
    await workerStore.close();
  }
  return result;
}
