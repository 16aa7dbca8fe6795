import type { PrismaClient } from "../../lib/db.js";
import { withConflictRetry } from "../../lib/retry.js";

/**
 * The two statements of invoice-totals: recompute one chunk of invoices, and
 * page through the invoices to recompute when the payload names none.
 */

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

export interface RecomputedChunk {
  recomputed: number;
  changed: number;
  linesUpdated: number;
  voided: number;
  /** Invoices whose stored totals changed: their cache entries are stale. */
  changedIds: string[];
  /** Invoices left alone because a total would not fit Decimal(14,2). */
  overflowIds: string[];
}

/** Recomputes the totals of `ids` (one statement, retried on a write conflict). */
export async function recomputeChunk(prisma: PrismaClient, ids: string[]): Promise<RecomputedChunk | undefined> {
  const [row] = await withConflictRetry(prisma, (tx) => tx.$queryRawUnsafe<RecomputedChunk[]>(recomputeChunkSql, ids), { isolationLevel: "ReadCommitted" });
  return row;
}

const smallestUuid = "00000000-0000-0000-0000-000000000000";

/** The ids of the next `pageSize` invoices after `after` (from the start when null), changed since `since` when given. */
export async function nextInvoiceIds(prisma: PrismaClient, after: string | null, pageSize: number, since: Date | null): Promise<string[]> {
  const page = await prisma.$queryRawUnsafe<{ id: string }[]>(nextIdsSql, after ?? smallestUuid, pageSize, since);
  return page.map((row) => row.id);
}
