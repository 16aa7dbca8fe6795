import { z } from "zod";
import { cacheKeys } from "../cache/cache-keys.js";
import { ChunkLanes } from "../lib/chunk-lanes.js";
import { withConflictRetry } from "../lib/retry.js";
import { defineJob } from "../queues/job-definition.js";

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
    chunkSize: z.number().int().min(1).max(10_000).optional(),
    /** Chunks recomputed at once, each on its own connection. @defaultValue 2 */
    parallelism: z.number().int().min(1).max(8).optional(),
  })
  .strict()
  .refine((payload) => [payload.invoiceIds, payload.changedSince, payload.all].filter((value) => value !== undefined).length === 1, {
    error: "give exactly one of invoiceIds, changedSince or all",
    path: ["invoiceIds"],
  });

export type InvoiceTotalsPayload = z.output<typeof invoiceTotalsPayload>;

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

// Takes $1 uuid[] of invoice ids. Returns one row: how many invoices were
// recomputed and changed, how many line totals changed, how many ids were
// voided, and the invoices left alone because a total would not fit
// Decimal(14,2) (one such invoice must not fail the whole chunk on every retry).
// Rows whose values are already right are not rewritten (no dead tuples).
const recomputeChunkSql = `
WITH sums AS (
  SELECT i."id", i."amountPaid",
         coalesce(sum(round(li."quantity" * li."unitPrice", 2)), 0) AS subtotal,
         coalesce(sum(li."discountAmount"), 0) AS discount,
         coalesce(sum(li."taxAmount"), 0) AS tax,
         coalesce(max(abs(round(li."quantity" * li."unitPrice", 2) - li."discountAmount" + li."taxAmount")), 0) AS largest_line
    FROM "invoices" i
    LEFT JOIN "invoice_line_items" li ON li."invoiceId" = i."id" AND li."invoiceId" = ANY($1::uuid[])
   WHERE i."id" = ANY($1::uuid[]) AND i."voidedAt" IS NULL
   GROUP BY i."id"
), checked AS (
  SELECT s."id", s.subtotal, s.discount, s.tax, s.subtotal - s.discount + s.tax AS total,
         greatest(abs(s.subtotal), abs(s.discount), abs(s.tax), abs(s.subtotal - s.discount + s.tax),
                  abs(s.subtotal - s.discount + s.tax - s."amountPaid"), s.largest_line) < 1e12 AS fits
    FROM sums s
), line_updates AS (
  UPDATE "invoice_line_items" li
     SET "lineTotal" = round(li."quantity" * li."unitPrice", 2) - li."discountAmount" + li."taxAmount"
    FROM checked c
   WHERE li."invoiceId" = ANY($1::uuid[])
     AND li."invoiceId" = c."id"
     AND c.fits
     AND li."lineTotal" IS DISTINCT FROM round(li."quantity" * li."unitPrice", 2) - li."discountAmount" + li."taxAmount"
  RETURNING 1
), invoice_updates AS (
  UPDATE "invoices" i
     SET "subtotal" = c.subtotal,
         "discountTotal" = c.discount,
         "taxTotal" = c.tax,
         "total" = c.total,
         "balanceDue" = c.total - i."amountPaid"
    FROM checked c
   WHERE i."id" = ANY($1::uuid[])
     AND i."id" = c."id"
     AND c.fits
     AND (i."subtotal", i."discountTotal", i."taxTotal", i."total", i."balanceDue")
         IS DISTINCT FROM (c.subtotal, c.discount, c.tax, c.total, c.total - i."amountPaid")
  RETURNING i."id"
)
SELECT (SELECT count(*) FROM checked WHERE fits)::int AS "recomputed",
       (SELECT count(*) FROM invoice_updates)::int AS "changed",
       (SELECT count(*) FROM line_updates)::int AS "linesUpdated",
       (SELECT count(*) FROM "invoices" WHERE "id" = ANY($1::uuid[]) AND "voidedAt" IS NOT NULL)::int AS "voided",
       coalesce((SELECT array_agg("id"::text) FROM invoice_updates), '{}') AS "changedIds",
       coalesce((SELECT array_agg("id"::text) FROM checked WHERE NOT fits), '{}') AS "overflowIds"`;

// Takes $1 the last id seen (keyset pagination), $2 the page size, $3 an
// optional timestamp: only invoices changed (or with a line changed) since then.
// Returns the next page of invoice ids in id order.
const nextIdsSql = `
SELECT i."id"::text AS id
  FROM "invoices" i
 WHERE i."id" > $1::uuid
   AND ($3::timestamptz IS NULL
        OR i."updatedAt" >= $3::timestamptz
        OR EXISTS (SELECT 1 FROM "invoice_line_items" li WHERE li."invoiceId" = i."id" AND li."updatedAt" >= $3::timestamptz))
 ORDER BY i."id"
 LIMIT $2`;

const smallestUuid = "00000000-0000-0000-0000-000000000000";

export const invoiceTotalsJob = defineJob({
  queue: "invoice-totals",
  payloadSchema: invoiceTotalsPayload,

  async handle(payload, { db, log, reportProgress, invalidateCache }): Promise<InvoiceTotalsResult> {
    const chunkSize = payload.chunkSize ?? 1000;
    const result: InvoiceTotalsResult = { invoicesUpdated: 0, invoicesChanged: 0, linesUpdated: 0, skippedVoided: 0, skippedOverflow: 0 };

    const recompute = async (ids: string[]) => {
      const [row] = await withConflictRetry(
        db.prisma,
        (tx) =>
          tx.$queryRawUnsafe<{ recomputed: number; changed: number; linesUpdated: number; voided: number; changedIds: string[]; overflowIds: string[] }[]>(
            recomputeChunkSql,
            ids,
          ),
        { isolationLevel: "ReadCommitted" },
      );
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
    const lanes = new ChunkLanes(payload.parallelism ?? 2);
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
      let after = smallestUuid;
      for (;;) {
        const page = await db.prisma.$queryRawUnsafe<{ id: string }[]>(nextIdsSql, after, chunkSize, since);
        if (page.length === 0) break;
        const ids = page.map((row) => row.id);
        after = ids[ids.length - 1] as string;
        await lanes.start(() => recomputeAndReport(ids));
      }
    }
    await lanes.drain();

    log.info(result, "invoice totals recomputed");
    return result;
  },
});
