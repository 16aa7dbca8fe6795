import { z } from "zod";
import { defineContract } from "../../queues/contract.js";

export interface InvoiceTotalsResult {
  /** Non-voided invoices whose totals were recomputed. */
  invoicesUpdated: number;
  /** Of those, how many had stored totals that were wrong. */
  invoicesChanged: number;
  linesUpdated: number;
  skippedVoided: number;
  /** Invoices left alone because a total would exceed Decimal(14,2); their ids are logged at warn. */
  skippedOverflow: number;
}

const uuidList = z
  .array(z.uuid({ error: "must be an invoice id (uuid)" }))
  .min(1)
  .max(10_000);

export const invoiceTotalsPayload = z
  .object({
    invoiceIds: uuidList.optional(),
    changedSince: z.iso.datetime({ offset: true, error: "must be an ISO 8601 date-time, e.g. 2026-01-31T00:00:00Z" }).optional(),
    all: z.literal(true, { error: "must be true when given" }).optional(),
    /** Invoices per statement. @defaultValue 1000 */
    chunkSize: z.number().int().min(1).max(10_000).default(1000),
    /** Chunks recomputed at once, each on its own connection. @defaultValue 2 */
    parallelism: z.number().int().min(1).max(8).default(2),
  })
  .strict()
  .refine((payload) => [payload.invoiceIds, payload.changedSince, payload.all].filter((value) => value !== undefined).length === 1, {
    error: "give exactly one of invoiceIds, changedSince or all",
    path: ["invoiceIds"],
  });

export type InvoiceTotalsPayload = z.output<typeof invoiceTotalsPayload>;

export const invoiceTotalsContract = defineContract<InvoiceTotalsResult>()({
  name: "invoice-totals",
  payload: invoiceTotalsPayload,
  worker: { concurrency: 2 },
  jobOptions: { attempts: 5 },
  // Jobs for one invoice enqueued within half a second collapse into one, which
  // runs at the end of that window and so sees every change made in it; one
  // enqueued while it runs triggers exactly one more run (see producer.ts).
  deduplicate: (payload) => (payload.invoiceIds?.length === 1 ? { id: `invoice:${payload.invoiceIds[0]}`, ttlMs: 500 } : undefined),
});
