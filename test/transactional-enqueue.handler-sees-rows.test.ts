import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InvoiceTotalsResult } from "../src/jobs/invoice-totals/contract.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { expectedLineTotal, liveInvoices, readInvoices, STALE, seededRandom, totalsMismatches } from "./support/invoice-data.js";
import { memoryLogger, testConfig, testQueueBackend, useTestDb } from "./support/test-env.js";
import { openTransactionalQueues, type TransactionalQueues } from "./support/transactional-queues.js";
import { waitFor } from "./support/wait-for.js";

/**
 * A job never starts before its transaction's rows are visible: an invoice
 * and its invoice-totals job are written in one Prisma transaction that stays
 * open well past the job's 500 ms deduplication delay. A job written outside
 * the transaction would run in that time, find no invoice and update nothing.
 */
describe(`a job enqueued in a transaction sees the rows that transaction wrote (${testQueueBackend()} backend)`, () => {
  const testDatabase = useTestDb();
  let queues: TransactionalQueues;
  let worker: RunningWorker;

  beforeAll(async () => {
    const config = testConfig(testDatabase.url);
    queues = await openTransactionalQueues(config, testDatabase.db.pool);
    worker = await startWorker("invoice-totals", { config, logger: memoryLogger("warn").logger, db: testDatabase.db });
  });

  afterAll(async () => {
    await worker?.close();
    await queues?.close();
  });

  it("invoice-totals recomputes the invoice created in the same transaction", async () => {
    const [invoice] = liveInvoices(1, seededRandom(17));
    if (!invoice) throw new Error("no invoice generated");
    const transactionOpenMs = 2000;

    const enqueued = await testDatabase.db.prisma.$transaction(
      async (tx) => {
        const patient = await tx.patient.create({ data: { firstName: "Grace", lastName: "Hopper" } });
        const job = await queues.producer.enqueue("invoice-totals", { invoiceIds: [invoice.id] }, { tx });
        // The invoice is written after the enqueue, and the transaction stays open: only a commit makes the job runnable.
        await tx.invoice.create({
          data: {
            id: invoice.id,
            invoiceNumber: `TX-${randomUUID()}`,
            patientId: patient.id,
            status: "issued",
            amountPaid: invoice.amountPaid,
            subtotal: STALE,
            discountTotal: STALE,
            taxTotal: STALE,
            total: STALE,
            balanceDue: STALE,
            lineItems: { create: invoice.lines.map((line) => ({ description: "line", ...line, lineTotal: STALE })) },
          },
        });
        await sleep(transactionOpenMs);
        return job;
      },
      { timeout: transactionOpenMs + 10_000 },
    );

    const finished = await waitFor(
      "the invoice-totals job to finish",
      async () => {
        const job = (await queues.jobs("invoice-totals")).find((candidate) => candidate.id === enqueued.id);
        return job?.finishedOn ? job : undefined;
      },
      60_000,
    );
    expect(await (finished as Job).getState()).toBe("completed");
    expect((finished as Job).returnvalue as InvoiceTotalsResult).toMatchObject({
      invoicesUpdated: 1,
      linesUpdated: invoice.lines.filter((line) => expectedLineTotal(line) !== STALE).length,
    });
    expect(totalsMismatches(await readInvoices(testDatabase.db.pool, [invoice.id]))).toEqual([]);
    // It started only after the commit, i.e. after the transaction had been open for its whole sleep.
    expect((finished as Job).processedOn ?? 0).toBeGreaterThanOrEqual((finished as Job).timestamp + transactionOpenMs);
  });
});
