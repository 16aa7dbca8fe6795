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
import { benchRun } from "./bench-run.js";
import { type BenchRow, type BenchSection, pairedRatio } from "./bench-section.js";
import { cpuOf } from "./host-cpu.js";
import { pairedRounds } from "./paired-rounds.js";
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
 * Each round runs the job and both baselines back to back (paired rounds,
 * alternating which goes first). Totals are reset (and the tables vacuumed)
 * before every timed part so each does the full work, and every run's result
 * is checked against the others.
 */
const INVOICES = Number(process.env.BENCH_INVOICES ?? 10_000);
const LINES_PER_INVOICE = 20;
const LOOP_SAMPLE = Number(process.env.BENCH_INVOICE_LOOP_SAMPLE ?? 500);
/** Paired rounds: the job, then the statement and the loop, or the other way round. */
const ROUNDS = Number(process.env.BENCH_INVOICE_ROUNDS ?? 3);

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

interface BaselineRound {
  /** The hand-written statement, ms. */
  handMs: number;
  /** CPU of this process and the database's PostgreSQL processes during the statement, ms. */
  handCpuMs: number;
  /** Seed 004's loop, timed on the sample and scaled to every non-voided invoice, ms. */
  loopMs: number;
}

interface JobRound {
  ms: number;
  /** CPU of this process (the worker) and the database's PostgreSQL processes during the job, ms. */
  cpuMs: number;
}

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
    const config = loadConfig({ QUEUE_BACKEND: "redis", DATABASE_URL: url, REDIS_URL: benchRedisUrl, QUEUE_PREFIX: prefix, LOG_LEVEL: "warn" });
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
      const fingerprints = new Set<string | undefined>();

      // Seed 004's loop, on a sample of non-voided invoices.
      const { rows: sample } = await admin.query<{ id: string }>(`SELECT "id"::text FROM "invoices" WHERE "voidedAt" IS NULL ORDER BY "id" LIMIT $1`, [
        LOOP_SAMPLE,
      ]);
      const { rows: liveRows } = await admin.query<{ live: number }>(`SELECT count(*)::int AS live FROM "invoices" WHERE "voidedAt" IS NULL`);
      const live = liveRows[0]?.live ?? INVOICES;
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

      // Every timed part starts from reset totals (reset untimed); the job and the statement must agree on every total.
      const paired = await pairedRounds({
        label: "invoice-totals",
        rounds: ROUNDS,
        baseline: async (): Promise<BaselineRound> => {
          await reset();
          const hand = await cpuOf(admin, () => timeMs(() => admin.query(handWrittenSql)));
          fingerprints.add(await fingerprint());
          await reset();
          const loopMs = ((await timeMs(() => fetchAllLoop(sample))) / sample.length) * live;
          return { handMs: hand.result, handCpuMs: hand.processMs + hand.postgresMs, loopMs };
        },
        subject: async (): Promise<JobRound> => {
          await reset();
          let result: InvoiceTotalsResult | undefined;
          // The worker runs in this process, so this process's CPU is the worker's (plus the producer's few calls).
          const run = await cpuOf(admin, () =>
            timeMs(async () => {
              const job = await producer.enqueue("invoice-totals", { all: true });
              result = (await job.waitUntilFinished(events, 600_000)) as InvoiceTotalsResult;
            }),
          );
          if (result?.invoicesUpdated !== live) throw new Error(`the job updated ${result?.invoicesUpdated} invoices, expected ${live}`);
          fingerprints.add(await fingerprint());
          return { ms: run.result, cpuMs: run.processMs + run.postgresMs };
        },
        // Times, lower is better: the statement's time as a share of the job's.
        ratio: (baseline, job) => baseline.handMs / job.ms,
        show: (figures) =>
          "handMs" in figures
            ? `UPDATE ${Math.round(figures.handMs)} ms (${Math.round(figures.handCpuMs)} ms cpu), loop ~${Math.round(figures.loopMs)} ms`
            : `job ${Math.round(figures.ms)} ms (${Math.round(figures.cpuMs)} ms cpu)`,
      });
      if (fingerprints.size !== 1) throw new Error("the job and the hand-written statement disagree on the totals");

      const rounds = paired.rounds.length;
      const jobMs = paired.spreadOf((round) => round.subject.ms).median;
      const loopRatio = paired.spreadOf((round) => round.baseline.loopMs / round.subject.ms);
      const cpuRatio = paired.spreadOf((round) => round.baseline.handCpuMs / round.subject.cpuMs);
      return [
        {
          name: `invoice-totals {all} on ${INVOICES}×${LINES_PER_INVOICE}: job vs one set-based UPDATE (time, lower is better; ${rounds} paired rounds, ratio = UPDATE / job per round)`,
          value: jobMs,
          unit: "ms",
          baseline: paired.spreadOf((round) => round.baseline.handMs).median,
          ...pairedRatio(paired.ratio, rounds),
          goal: ">= 0.5 (job within 2×)",
          met: paired.ratio.median >= 0.5,
        },
        {
          name: `invoice-totals {all}: job vs seed 004 fetch-all loop (loop warmed up, timed on ${sample.length} invoices per round, scaled to ${live}; ratio = loop / job per round)`,
          value: jobMs,
          unit: "ms",
          baseline: paired.spreadOf((round) => round.baseline.loopMs).median,
          ...pairedRatio(loopRatio, rounds),
          goal: ">= 20",
          met: loopRatio.median >= 20,
        },
        {
          name: "invoice-totals {all}: CPU per run (this process, which runs the worker, plus the database's PostgreSQL processes), job vs the UPDATE (informational; ratio = UPDATE / job per round)",
          value: paired.spreadOf((round) => round.subject.cpuMs).median,
          unit: "ms",
          baseline: paired.spreadOf((round) => round.baseline.handCpuMs).median,
          ...pairedRatio(cpuRatio, rounds),
        },
      ];
    } finally {
      await worker.close();
      await events.close();
      eventsConnection.disconnect();
      await producer.close();
      await benchRun.removeKeys(prefix);
      await appPrisma.$disconnect();
      await db.close();
      await admin.end();
      await benchRun.dropDatabase(url);
    }
  },
};
