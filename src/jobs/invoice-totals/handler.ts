import { cacheKeys } from "../../cache/cache-keys.js";
import { ChunkLanes } from "../../lib/chunk-lanes.js";
import type { JobHandler } from "../../queues/job-context.js";
import type { InvoiceTotalsResult, invoiceTotalsContract } from "./contract.js";
import { nextInvoiceIds, recomputeChunk } from "./totals-queries.js";

/**
 * invoice-totals: recomputes invoice totals by aggregation in the database
 * (seed 004, CRITICAL #2), instead of fetching every line item.
 *
 *   line.lineTotal      = round(quantity × unitPrice, 2) − discountAmount + taxAmount
 *   invoice.subtotal    = Σ round(quantity × unitPrice, 2)
 *   invoice.total       = subtotal − discountTotal + taxTotal
 *   invoice.balanceDue  = total − amountPaid
 *
 * Money stays NUMERIC end to end; no value passes through a JS float.
 * Voided invoices are left alone.
 */
export const handleInvoiceTotals: JobHandler<typeof invoiceTotalsContract> = async (payload, { db, log, reportProgress, invalidateCache, signal }) => {
  const { chunkSize } = payload;
  const result: InvoiceTotalsResult = { invoicesUpdated: 0, invoicesChanged: 0, linesUpdated: 0, skippedVoided: 0, skippedOverflow: 0 };

  const recompute = async (ids: string[]) => {
    // Its statements go through Prisma, which a cancel cannot cut short: no chunk starts once the job is stopped.
    signal.throwIfAborted();
    const row = await recomputeChunk(db.prisma, ids);
    if (!row) return;
    result.invoicesUpdated += row.recomputed;
    result.invoicesChanged += row.changed;
    result.linesUpdated += row.linesUpdated;
    result.skippedVoided += row.voided;
    result.skippedOverflow += row.overflowIds.length;
    if (row.overflowIds.length > 0) {
      log.warn({ invoiceIds: row.overflowIds }, "invoices left unchanged: a total would exceed Decimal(14,2); fix their line items");
    }
    await invalidateCache(row.changedIds.map(cacheKeys.invoice));
  };

  // Chunks cover disjoint invoices, so they never wait on each other's row
  // locks; with two or more cores, PostgreSQL works on several at once.
  const lanes = new ChunkLanes(payload.parallelism);
  const listed = payload.invoiceIds ? [...new Set(payload.invoiceIds)] : undefined;
  let processed = 0;
  const recomputeAndReport = async (ids: string[]) => {
    await recompute(ids);
    processed += ids.length;
    await reportProgress({ processed, ...(listed ? { total: listed.length } : {}), ...result });
  };

  if (listed) {
    for (let start = 0; start < listed.length; start += chunkSize) await lanes.start(() => recomputeAndReport(listed.slice(start, start + chunkSize)));
  } else {
    const since = payload.changedSince ? new Date(payload.changedSince) : null;
    let after: string | null = null;
    for (;;) {
      const ids = await nextInvoiceIds(db.prisma, after, chunkSize, since);
      if (ids.length === 0) break;
      after = ids[ids.length - 1] as string;
      await lanes.start(() => recomputeAndReport(ids));
    }
  }
  await lanes.drain();

  log.info(result, "invoice totals recomputed");
  return result;
};
