import { QueueEvents } from "bullmq";
import { Redis } from "ioredis";
import pg from "pg";
import { pino } from "pino";
import type { InvoiceTotalsResult } from "../src/jobs/invoice-totals/contract.js";
import { loadConfig } from "../src/lib/config.js";
import { createDb, Prisma } from "../src/lib/db.js";
import { createLogger } from "../src/lib/logger.js";
import { Producer } from "../src/queues/producer.js";
import { startWorker } from "../src/queues/start-worker.js";
import type { BenchRow, BenchSection } from "./bench-section.js";
import { applicationPrisma, benchPrefix, benchRedisUrl, freshBenchDatabase, timeMs } from "./support.js";

/**
 * invoice-totals on 10k invoices × 20 line items (5% voided), run as a real
 * job through the worker runtime, against
 *  - one hand-written set-based statement doing the same updates (goal: the
 *    job takes at most 2× its time), and
 *  - seed 004's loop: per invoice, fetch every line item, add up in the app,
 *    update the invoice (goal: the job is at least 20× faster). The loop is
 *    warmed up, then timed on a sample and scaled per invoice; it does not
 *    even write line totals, so the comparison favours it.
 * Totals are reset (and the tables vacuumed) before every run so each run does
 * the full work, and every run's result is checked against the others.
 */
const INVOICES = Number(process.env.BENCH_INVOICES ?? 10_000);
const LINES_PER_INVOICE = 20;
const LOOP_SAMPLE = Number(process.env.BENCH_INVOICE_LOOP_SAMPLE ?? 500);
const ROUNDS = 2;

// Each takes the parameters beside it. Inserts patients, invoices (5% voided)
// and line items whose stored totals are stale.
const seedStatements: [string, number[]][] = [
  [`INSERT INTO "patients" ("firstName", "lastName") SELECT 'Bench', 'Patient ' || g FROM generate_series(1, 100) g`, []],
  [
    `INSERT INTO "invoices" ("invoiceNumber", "patientId", "status", "amountPaid", "voidedAt")
     SELECT 'B-' || g, p.ids[1 + g % 100], 'issued', round((random() * 200)::numeric, 2), CASE WHEN g % 20 = 0 THEN now() END
       FROM generate_series(1, $1::int) g, (SELECT array_agg("id") AS ids FROM "patients") p`,
    [INVOICES],
  ],
  [
    `INSERT INTO "invoice_line_items" ("invoiceId", "description", "quantity", "unitPrice", "discountAmount", "taxAmount")
     SELECT i."id", 'Service ' || g, round((random() * 20)::numeric, 3), round((random() * 500)::numeric, 2),
            round((random() * 10)::numeric, 2), round((random() * 30)::numeric, 2)
       FROM "invoices" i, generate_series(1, $1::int) g`,
    [LINES_PER_INVOICE],
  ],
];

const resetSql = [
  `UPDATE "invoices" SET "subtotal" = 0, "discountTotal" = 0, "taxTotal" = 0, "total" = 0, "balanceDue" = 0`,
  `UPDATE "invoice_line_items" SET "lineTotal" = 0`,
];

// Takes nothing. The hand-written baseline: every line total and every
// non-voided invoice's totals in one statement.
const handWrittenSql = `
WITH lines AS (
  UPDATE "invoice_line_items" li
     SET "lineTotal" = round(li."quantity" * li."unitPrice", 2) - li."discountAmount" + li."taxAmount"
    FROM "invoices" i
   WHERE i."id" = li."invoiceId" AND i."voidedAt" IS NULL
), sums AS (
  SELECT i."id", coalesce(sum(round(li."quantity" * li."unitPrice", 2)), 0) AS subtotal,
         coalesce(sum(li."discountAmount"), 0) AS discount, coalesce(sum(li."taxAmount"), 0) AS tax
    FROM "invoices" i LEFT JOIN "invoice_line_items" li ON li."invoiceId" = i."id"
   WHERE i."voidedAt" IS NULL
   GROUP BY i."id"
)
UPDATE "invoices" i
   SET "subtotal" = s.subtotal, "discountTotal" = s.discount, "taxTotal" = s.tax,
       "total" = s.subtotal - s.discount + s.tax, "balanceDue" = s.subtotal - s.discount + s.tax - i."amountPaid"
  FROM sums s
 WHERE i."id" = s."id"`;

// Takes nothing. Returns a fingerprint of every total, to check that the runs agree.
const fingerprintSql = `
SELECT (SELECT md5(string_agg("id"::text || ':' || "subtotal" || ':' || "discountTotal" || ':' || "taxTotal" || ':' || "total" || ':' || "balanceDue", ',' ORDER BY "id")) FROM "invoices") ||
       (SELECT md5(string_agg("id"::text || ':' || "lineTotal", ',' ORDER BY "id")) FROM "invoice_line_items") AS fingerprint`;

export const invoiceTotalsBench: BenchSection = {
  name: "invoice-totals",
  async run(): Promise<BenchRow[]> {
    const url = await freshBenchDatabase("invoice_totals");
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const logger = createLogger({ level: "warn" }, pino.destination(2));
    const db = createDb({ url, poolSize: 4, logger, slowQueryMs: 600_000 });
    // Seed 004's loop runs on the application's own kind of client.
    const appPrisma = applicationPrisma(url);
    const prefix = benchPrefix();
    const config = loadConfig({ DATABASE_URL: url, REDIS_URL: benchRedisUrl, QUEUE_PREFIX: prefix, LOG_LEVEL: "warn" });
    const producer = new Producer({ redisUrl: benchRedisUrl, prefix });
    const eventsConnection = new Redis(benchRedisUrl, { maxRetriesPerRequest: null });
    const events = new QueueEvents("invoice-totals", { connection: eventsConnection, prefix });
    const worker = await startWorker("invoice-totals", { config, logger, db });
    try {
      for (const [statement, values] of seedStatements) await admin.query(statement, values);
      await events.waitUntilReady();
      const reset = async () => {
        for (const statement of resetSql) await admin.query(statement);
        await admin.query(`VACUUM ANALYZE "invoices", "invoice_line_items"`);
      };
      const fingerprint = async () => (await admin.query<{ fingerprint: string }>(fingerprintSql)).rows[0]?.fingerprint;

      const jobMs: number[] = [];
      const handMs: number[] = [];
      const fingerprints = new Set<string | undefined>();
      let jobResult: InvoiceTotalsResult | undefined;
      for (let round = 0; round < ROUNDS; round++) {
        await reset();
        jobMs.push(
          await timeMs(async () => {
            const job = await producer.enqueue("invoice-totals", { all: true });
            jobResult = (await job.waitUntilFinished(events, 600_000)) as InvoiceTotalsResult;
          }),
        );
        fingerprints.add(await fingerprint());
        await reset();
        handMs.push(await timeMs(() => admin.query(handWrittenSql)));
        fingerprints.add(await fingerprint());
      }
      if (fingerprints.size !== 1) throw new Error("the job and the hand-written statement disagree on the totals");

      // Seed 004's loop, on a sample of non-voided invoices.
      const { rows: sample } = await admin.query<{ id: string }>(`SELECT "id"::text FROM "invoices" WHERE "voidedAt" IS NULL ORDER BY "id" LIMIT $1`, [
        LOOP_SAMPLE,
      ]);
      const fetchAllLoop = async (invoices: { id: string }[]) => {
        for (const { id } of invoices) {
          await appPrisma.$transaction(async (tx) => {
            const invoice = await tx.invoice.findUniqueOrThrow({ where: { id } });
            const lines = await tx.invoiceLineItem.findMany({ where: { invoiceId: id } });
            let subtotal = new Prisma.Decimal(0);
            let discountTotal = new Prisma.Decimal(0);
            let taxTotal = new Prisma.Decimal(0);
            for (const line of lines) {
              subtotal = subtotal.plus(line.quantity.mul(line.unitPrice).toDecimalPlaces(2));
              discountTotal = discountTotal.plus(line.discountAmount);
              taxTotal = taxTotal.plus(line.taxAmount);
            }
            const total = subtotal.minus(discountTotal).plus(taxTotal);
            await tx.invoice.update({ where: { id }, data: { subtotal, discountTotal, taxTotal, total, balanceDue: total.minus(invoice.amountPaid) } });
          });
        }
      };
      // Untimed first: V8 compiles Prisma's query path on first use, and a cold
      // loop runs 20–30% slower than the same loop a few hundred queries later.
      await fetchAllLoop(sample.slice(0, 50));
      await reset();
      const loopMs = await timeMs(() => fetchAllLoop(sample));
      const live = jobResult?.invoicesUpdated ?? INVOICES;
      const loopEstimateMs = (loopMs / sample.length) * live;

      const bestJob = Math.min(...jobMs);
      const bestHand = Math.min(...handMs);
      return [
        {
          name: `invoice-totals {all} on ${INVOICES}×${LINES_PER_INVOICE}: job vs one set-based UPDATE (time, lower is better; ratio = UPDATE / job)`,
          value: bestJob,
          unit: "ms",
          baseline: bestHand,
          ratio: bestHand / bestJob,
          goal: ">= 0.5 (job within 2×)",
          met: bestJob <= 2 * bestHand,
        },
        {
          name: `invoice-totals {all}: job vs seed 004 fetch-all loop (loop warmed up, timed on ${sample.length} invoices, scaled to ${live}; ratio = loop / job)`,
          value: bestJob,
          unit: "ms",
          baseline: loopEstimateMs,
          ratio: loopEstimateMs / bestJob,
          goal: ">= 20",
          met: loopEstimateMs / bestJob >= 20,
        },
      ];
    } finally {
      await worker.close();
      await events.close();
      eventsConnection.disconnect();
      await producer.queue("invoice-totals").obliterate({ force: true });
      await producer.close();
      await appPrisma.$disconnect();
      await db.close();
      await admin.end();
    }
  },
};
