import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InvoiceTotalsResult } from "../src/jobs/invoice-totals/contract.js";
import type { Config } from "../src/lib/config.js";
import type { Db } from "../src/lib/db.js";
import type { AnyQueueEvents } from "../src/lib/queue-store.js";
import type { Producer } from "../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { waitForJob } from "../src/queues/wait-for-job.js";
import {
  expectedLineTotal,
  type InvoiceSpec,
  insertInvoices,
  randomInvoices,
  readInvoices,
  roundingEdgeInvoices,
  STALE,
  seededRandom,
  totalsMismatches,
} from "./support/invoice-data.js";
import { openQueueClient, type QueueClient } from "./support/queue-client.js";
import { cliEnv, runCli, spawnCli } from "./support/spawn-cli.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";

const seed = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);

describe(`invoice-totals computes totals exactly (seed ${seed}; replay with TEST_SEED=${seed})`, () => {
  const testDatabase = useTestDb();
  let db: Db;
  let config: Config;
  let producer: Producer;
  let worker: RunningWorker;
  let events: AnyQueueEvents;
  let client: QueueClient;
  let invoices: InvoiceSpec[];

  async function run(payload: object): Promise<InvoiceTotalsResult> {
    const job = await producer.enqueueUnknown("invoice-totals", payload);
    return (await waitForJob(job, events, 120_000)) as InvoiceTotalsResult;
  }

  /** A fingerprint of every row version: equal before and after means nothing was rewritten. */
  async function rowVersions(): Promise<string[]> {
    const { rows } = await db.pool.query<{ v: string }>(
      `SELECT 'i' || "id" || ':' || xmin::text AS v FROM "invoices" UNION ALL SELECT 'l' || "id" || ':' || xmin::text FROM "invoice_line_items" ORDER BY 1`,
    );
    return rows.map((row) => row.v);
  }

  beforeAll(async () => {
    config = testConfig(testDatabase.url);
    db = testDatabase.db;
    invoices = [...roundingEdgeInvoices(), ...randomInvoices(800, seededRandom(seed))];
    await insertInvoices(db.pool, invoices);
    client = await openQueueClient("invoice-totals", config);
    ({ producer, events } = client);
    worker = await startWorker("invoice-totals", { config, logger: memoryLogger("warn").logger, db });
  });

  afterAll(async () => {
    await worker?.close();
    await client?.close();
  });

  it("{all: true} sets every line and invoice to the cent, leaves voided invoices alone, and reports counts", async () => {
    const voided = invoices.filter((invoice) => invoice.voided).length;
    expect(voided).toBeGreaterThan(0);
    expect(invoices.some((invoice) => invoice.lines.length === 0 && !invoice.voided)).toBe(true);

    // chunkSize 97 so pages and chunks end at awkward places.
    const result = await run({ all: true, chunkSize: 97 });

    expect(result).toMatchObject({ invoicesUpdated: invoices.length - voided, skippedVoided: voided });
    const stored = await readInvoices(db.pool);
    expect(stored.size).toBe(invoices.length);
    expect(totalsMismatches(stored)).toEqual([]);
    // The rounding cases, spelled out: half a cent rounds away from zero.
    expect(
      stored
        .get(invoices[0]!.id)
        ?.lines.map((line) => line.lineTotal)
        .sort(),
    ).toEqual(["0.03", "0.03", "1.01"]);
    expect(stored.get(invoices[1]!.id)?.subtotal).toBe("-0.03");
  });

  it("a second run changes nothing and rewrites no row", async () => {
    const before = await rowVersions();
    const result = await run({ all: true });
    expect(result.invoicesChanged).toBe(0);
    expect(result.linesUpdated).toBe(0);
    expect(await rowVersions()).toEqual(before);
  });

  it("small chunks recomputed four at a time still give every total to the cent", async () => {
    // Make every live invoice and line stale again, then recompute with many small chunks in parallel.
    await db.pool.query(
      `UPDATE "invoices" SET "subtotal" = $1, "discountTotal" = $1, "taxTotal" = $1, "total" = $1, "balanceDue" = $1 WHERE "voidedAt" IS NULL`,
      [STALE],
    );
    await db.pool.query(`UPDATE "invoice_line_items" li SET "lineTotal" = $1 FROM "invoices" i WHERE i."id" = li."invoiceId" AND i."voidedAt" IS NULL`, [
      STALE,
    ]);
    const voided = invoices.filter((invoice) => invoice.voided).length;
    // A line whose true total happens to be the stale marker is already right and is not rewritten.
    const liveLines = invoices
      .filter((invoice) => !invoice.voided)
      .flatMap((invoice) => invoice.lines)
      .filter((line) => expectedLineTotal(line) !== STALE).length;

    const result = await run({ all: true, chunkSize: 23, parallelism: 4 });

    expect(result).toMatchObject({ invoicesUpdated: invoices.length - voided, skippedVoided: voided, linesUpdated: liveLines });
    expect(totalsMismatches(await readInvoices(db.pool))).toEqual([]);
  });

  it("{invoiceIds} recomputes exactly the listed invoices, counting voided ones as skipped", async () => {
    // Random invoices only: the rounding cases include one near the Decimal(14,2) limit that these changes would push over.
    const live = invoices.slice(roundingEdgeInvoices().length).filter((invoice) => !invoice.voided && invoice.lines.length > 0);
    const listed = live.slice(0, 40).map((invoice) => invoice.id);
    const notListed = live[40]!.id;
    const voidedListed = invoices
      .filter((invoice) => invoice.voided)
      .slice(0, 3)
      .map((invoice) => invoice.id);
    // Change the lines of listed and unlisted invoices alike.
    await db.pool.query(`UPDATE "invoice_line_items" SET "quantity" = "quantity" + 1.5, "unitPrice" = "unitPrice" + 0.07 WHERE "invoiceId" = ANY($1::uuid[])`, [
      [...listed, notListed, ...voidedListed],
    ]);
    const missing = "00000000-0000-4000-8000-000000000000";

    const result = await run({ invoiceIds: [...listed, ...voidedListed, missing, listed[0]] });

    expect(result).toMatchObject({ invoicesUpdated: listed.length, invoicesChanged: listed.length, skippedVoided: voidedListed.length });
    expect(totalsMismatches(await readInvoices(db.pool, [...listed, ...voidedListed]))).toEqual([]);
    // The unlisted invoice keeps its old (now wrong) totals until someone asks for it.
    expect(totalsMismatches(await readInvoices(db.pool, [notListed])).length).toBeGreaterThan(0);
    await run({ invoiceIds: [notListed] });
    expect(totalsMismatches(await readInvoices(db.pool, [notListed]))).toEqual([]);
  });

  it("{changedSince} recomputes invoices changed, or with a line changed, since then, and no others", async () => {
    const live = invoices.slice(roundingEdgeInvoices().length).filter((invoice) => !invoice.voided && invoice.lines.length > 0);
    const [byLine, byInvoice, untouchedChange] = [live.slice(100, 130), live.slice(130, 140), live[150]!];
    const voidedChanged = invoices.find((invoice) => invoice.voided && invoice.lines.length > 0)!;
    const { rows } = await db.pool.query<{ since: Date }>(`SELECT (now() - interval '1 millisecond') AS since`);
    const since = rows[0]!.since;
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Producer apps bump updatedAt (Prisma's @updatedAt does); a change without it is invisible to changedSince.
    await db.pool.query(`UPDATE "invoice_line_items" SET "taxAmount" = "taxAmount" + 3.33, "updatedAt" = now() WHERE "invoiceId" = ANY($1::uuid[])`, [
      [...byLine.map((invoice) => invoice.id), voidedChanged.id],
    ]);
    await db.pool.query(`UPDATE "invoices" SET "amountPaid" = "amountPaid" + 10.01, "updatedAt" = now() WHERE "id" = ANY($1::uuid[])`, [
      byInvoice.map((invoice) => invoice.id),
    ]);
    await db.pool.query(`UPDATE "invoice_line_items" SET "discountAmount" = "discountAmount" + 1 WHERE "invoiceId" = $1::uuid`, [untouchedChange.id]);

    const result = await run({ changedSince: since.toISOString() });

    expect(result).toMatchObject({
      invoicesUpdated: byLine.length + byInvoice.length,
      invoicesChanged: byLine.length + byInvoice.length,
      skippedVoided: 1,
    });
    expect(
      totalsMismatches(
        await readInvoices(
          db.pool,
          [...byLine, ...byInvoice, voidedChanged].map((invoice) => invoice.id),
        ),
      ),
    ).toEqual([]);
    expect(totalsMismatches(await readInvoices(db.pool, [untouchedChange.id])).length).toBeGreaterThan(0);
  });

  it("leaves an invoice whose total would not fit Decimal(14,2) unchanged and reports it, without failing the others", async () => {
    const [tooBig] = [
      {
        id: randomUUID(),
        amountPaid: "0.00",
        voided: false,
        lines: [0, 1].map(() => ({ quantity: "1", unitPrice: "600000000000.00", discountAmount: "0.00", taxAmount: "0.00" })),
      },
    ];
    const good = invoices.find((invoice) => !invoice.voided && invoice.lines.length > 0)!;
    await insertInvoices(db.pool, [tooBig]);
    await db.pool.query(`UPDATE "invoices" SET "total" = $1 WHERE "id" = $2::uuid`, [STALE, good.id]);
    try {
      const result = await run({ invoiceIds: [tooBig.id, good.id] });
      expect(result).toMatchObject({ invoicesUpdated: 1, invoicesChanged: 1, skippedOverflow: 1 });
      expect(totalsMismatches(await readInvoices(db.pool, [good.id]))).toEqual([]);
      expect((await readInvoices(db.pool, [tooBig.id])).get(tooBig.id)).toMatchObject({ subtotal: STALE, total: STALE });
    } finally {
      await db.pool.query(`DELETE FROM "invoices" WHERE "id" = $1::uuid`, [tooBig.id]);
    }
  });

  it("`dbjobs enqueue invoice-totals --data '{\"all\":true}' --wait` prints the counts of a worker process's run", async () => {
    await worker.close();
    await db.pool.query(`UPDATE "invoices" SET "total" = $1, "balanceDue" = $1 WHERE "voidedAt" IS NULL`, [STALE]);
    await db.pool.query(`UPDATE "invoice_line_items" li SET "lineTotal" = $1 FROM "invoices" i WHERE i."id" = li."invoiceId" AND i."voidedAt" IS NULL`, [
      STALE,
    ]);
    const voided = invoices.filter((invoice) => invoice.voided).length;

    const workerProcess = spawnCli(["worker", "invoice-totals"], cliEnv(config));
    try {
      await workerProcess.waitForOutput(/worker started/, 60_000);
      const result = await runCli(["enqueue", "invoice-totals", "--data", '{"all":true}', "--wait"], cliEnv(config), 120_000);
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/job \S+ completed/);
      const printed = JSON.parse(result.stdout.slice(result.stdout.indexOf("{"))) as InvoiceTotalsResult;
      expect(printed).toMatchObject({ invoicesUpdated: invoices.length - voided, invoicesChanged: invoices.length - voided, skippedVoided: voided });
      expect(totalsMismatches(await readInvoices(db.pool))).toEqual([]);
    } finally {
      workerProcess.child.kill("SIGTERM");
      expect((await workerProcess.exited).code).toBe(0);
    }
  });
});
