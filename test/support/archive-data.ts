import type pg from "pg";
import { archiveCutoff } from "../../src/jobs/archiving/plan.js";
import { createPartition } from "../../src/partitions/create-partition.js";
import { addUtcMonths, utcMonthStart } from "../../src/partitions/month-bounds.js";

/**
 * Fills a month six months past the 7-year archive cutoff with `rows`
 * COMPLETED deposits, every `pendingEvery`-th one PENDING: a few pending rows
 * among the eligible ones keep the month on the batch path rather than the
 * whole-partition one. Amounts are (g % 500) + 0.5; keys are `<keyPrefix>-<g>`.
 * Returns the month.
 */
export async function seedArchivableMonth(client: pg.ClientBase, options: { rows: number; pendingEvery: number; keyPrefix: string }): Promise<Date> {
  const month = addUtcMonths(utcMonthStart(archiveCutoff(new Date(), 7)), -6);
  await createPartition(client, "transactions", month);
  await client.query(
    `INSERT INTO transactions (type, status, amount, "idempotencyKey", "createdAt")
     SELECT 'DEPOSIT', CASE WHEN g % $3 = 0 THEN 'PENDING'::"TransactionStatus" ELSE 'COMPLETED'::"TransactionStatus" END,
            (g % 500) + 0.5, $4 || '-' || g, $1::timestamptz + g * interval '20 seconds'
       FROM generate_series(1, $2) g`,
    [month, options.rows, options.pendingEvery, options.keyPrefix],
  );
  return month;
}
