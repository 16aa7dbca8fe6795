import { randomUUID } from "node:crypto";
import { Decimal } from "decimal.js";
import type pg from "pg";

/**
 * Invoice fixtures and an independent computation of their totals, for the
 * invoice-totals tests and bench. Values are decimal strings end to end (never
 * JS floats); the expected totals are computed with decimal.js, rounding half
 * away from zero like PostgreSQL's round(numeric).
 */
export interface LineSpec {
  quantity: string;
  unitPrice: string;
  discountAmount: string;
  taxAmount: string;
}

export interface InvoiceSpec {
  id: string;
  amountPaid: string;
  voided: boolean;
  lines: LineSpec[];
}

/** Stored in every total before a job runs, so a total the job did not write stands out. */
export const STALE = "999.99";

const D = Decimal.clone({ precision: 60, rounding: Decimal.ROUND_HALF_UP });

/** A seeded PRNG (mulberry32), so a failing random case can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max] written with `scale` decimals: fixed(12345, 2) = "123.45". */
function fixed(units: number, scale: number): string {
  return new D(units).div(10 ** scale).toFixed(scale);
}

export function randomInvoices(count: number, random: () => number, options: { maxLines?: number } = {}): InvoiceSpec[] {
  const maxLines = options.maxLines ?? 25;
  const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  const line = (): LineSpec => {
    const kind = random();
    let quantity: string;
    let unitPrice: string;
    if (kind < 0.4) {
      quantity = String(int(1, 10));
      unitPrice = fixed(int(1, 99_999), 2);
    } else if (kind < 0.75) {
      quantity = fixed(int(1, 99_999), 3); // fractional: 0.001 .. 99.999
      unitPrice = fixed(int(1, 99_999), 2);
    } else if (kind < 0.85) {
      quantity = fixed(int(1_000_000, 99_999_999), 3); // large quantity, up to 99,999.999
      unitPrice = fixed(int(1, 9_999_999), 2);
    } else if (kind < 0.93) {
      quantity = fixed(int(1, 10_000), 3); // large price, up to 999,999,999.99
      unitPrice = fixed(int(1_000_000_000, 99_999_999_999), 2);
    } else {
      quantity = `-${fixed(int(1, 5_000), 3)}`; // a credit line
      unitPrice = fixed(int(1, 99_999), 2);
    }
    return { quantity, unitPrice, discountAmount: fixed(int(0, random() < 0.5 ? 0 : 5_000), 2), taxAmount: fixed(int(0, random() < 0.3 ? 0 : 20_000), 2) };
  };
  return Array.from({ length: count }, () => ({
    id: randomUUID(),
    amountPaid: fixed(random() < 0.5 ? 0 : int(1, 500_000), 2),
    voided: random() < 0.1,
    lines: random() < 0.1 ? [] : Array.from({ length: int(1, maxLines) }, line),
  }));
}

/** Cases where rounding to the cent is easy to get wrong: exact half cents, both signs. */
/** Random invoices, none voided and each with at least one line: work a job must really do. */
export function liveInvoices(count: number, random: () => number, options: { maxLines?: number } = {}): InvoiceSpec[] {
  return randomInvoices(count, random, options).map((invoice) => ({
    ...invoice,
    voided: false,
    lines: invoice.lines.length ? invoice.lines : [{ quantity: "1", unitPrice: "5.00", discountAmount: "0.00", taxAmount: "0.10" }],
  }));
}

export function roundingEdgeInvoices(): InvoiceSpec[] {
  const line = (quantity: string, unitPrice: string, discountAmount = "0.00", taxAmount = "0.00"): LineSpec => ({
    quantity,
    unitPrice,
    discountAmount,
    taxAmount,
  });
  return [
    { id: randomUUID(), amountPaid: "0.00", voided: false, lines: [line("0.5", "0.05"), line("0.125", "0.20"), line("1.005", "1.00")] },
    { id: randomUUID(), amountPaid: "0.00", voided: false, lines: [line("-0.5", "0.05"), line("-0.125", "0.20"), line("0.5", "0.05")] },
    { id: randomUUID(), amountPaid: "0.10", voided: false, lines: [line("0.333", "0.01"), line("0.334", "0.01"), line("0.333", "0.01")] },
    { id: randomUUID(), amountPaid: "0.00", voided: false, lines: [line("99999.999", "9999999.99", "0.01", "0.00")] },
    { id: randomUUID(), amountPaid: "500.00", voided: false, lines: [line("1", "10.00", "25.00", "0.00")] },
  ];
}

const round2 = (value: Decimal.Value) => new D(value).toDecimalPlaces(2, Decimal.ROUND_HALF_UP);
/** PostgreSQL prints no negative zero; decimal.js keeps the sign of -0. */
const money = (value: Decimal) => (value.isZero() ? "0.00" : value.toFixed(2));

export function expectedLineTotal(line: LineSpec): string {
  return money(round2(new D(line.quantity).mul(line.unitPrice)).minus(line.discountAmount).plus(line.taxAmount));
}

export interface InvoiceTotals {
  subtotal: string;
  discountTotal: string;
  taxTotal: string;
  total: string;
  balanceDue: string;
}

/** subtotal = Σ round(quantity × unitPrice, 2), so that total = Σ lineTotal to the cent. */
export function expectedInvoiceTotals(lines: LineSpec[], amountPaid: string): InvoiceTotals {
  let subtotal = new D(0);
  let discount = new D(0);
  let tax = new D(0);
  for (const line of lines) {
    subtotal = subtotal.plus(round2(new D(line.quantity).mul(line.unitPrice)));
    discount = discount.plus(line.discountAmount);
    tax = tax.plus(line.taxAmount);
  }
  const total = subtotal.minus(discount).plus(tax);
  return {
    subtotal: money(subtotal),
    discountTotal: money(discount),
    taxTotal: money(tax),
    total: money(total),
    balanceDue: money(total.minus(amountPaid)),
  };
}

/** Inserts one patient and the invoices with their lines; every stored total is STALE. */
export async function insertInvoices(pool: pg.Pool, invoices: InvoiceSpec[]): Promise<void> {
  const {
    rows: [patient],
  } = await pool.query<{ id: string }>(`INSERT INTO "patients" ("firstName", "lastName") VALUES ('Test', 'Patient') RETURNING "id"`);
  for (let start = 0; start < invoices.length; start += 2000) {
    const chunk = invoices.slice(start, start + 2000);
    await pool.query(
      `INSERT INTO "invoices" ("id", "invoiceNumber", "patientId", "status", "amountPaid", "voidedAt",
                               "subtotal", "discountTotal", "taxTotal", "total", "balanceDue", "updatedAt")
       SELECT id, 'T-' || id::text, $2::uuid, 'issued', paid, CASE WHEN voided THEN now() END, $5, $5, $5, $5, $5, now() - interval '1 day'
         FROM unnest($1::uuid[], $3::numeric[], $4::boolean[]) AS input(id, paid, voided)`,
      [chunk.map((invoice) => invoice.id), patient?.id, chunk.map((invoice) => invoice.amountPaid), chunk.map((invoice) => invoice.voided), STALE],
    );
    const lines = chunk.flatMap((invoice) => invoice.lines.map((line) => ({ invoiceId: invoice.id, ...line })));
    for (let lineStart = 0; lineStart < lines.length; lineStart += 20_000) {
      const part = lines.slice(lineStart, lineStart + 20_000);
      await pool.query(
        `INSERT INTO "invoice_line_items" ("invoiceId", "description", "quantity", "unitPrice", "discountAmount", "taxAmount", "lineTotal", "updatedAt")
         SELECT invoice, 'line', q, p, d, t, $6, now() - interval '1 day'
           FROM unnest($1::uuid[], $2::numeric[], $3::numeric[], $4::numeric[], $5::numeric[]) AS input(invoice, q, p, d, t)`,
        [
          part.map((line) => line.invoiceId),
          part.map((line) => line.quantity),
          part.map((line) => line.unitPrice),
          part.map((line) => line.discountAmount),
          part.map((line) => line.taxAmount),
          STALE,
        ],
      );
    }
  }
}

export interface StoredInvoice extends InvoiceTotals {
  id: string;
  amountPaid: string;
  voided: boolean;
  lines: (LineSpec & { id: string; lineTotal: string })[];
}

/** Reads invoices and lines back as decimal strings, as PostgreSQL prints them. */
export async function readInvoices(pool: pg.Pool, ids?: string[]): Promise<Map<string, StoredInvoice>> {
  const filter = ids ? `WHERE "id" = ANY($1::uuid[])` : "";
  const { rows: invoices } = await pool.query(
    `SELECT "id"::text, "amountPaid"::text, "voidedAt" IS NOT NULL AS voided, "subtotal"::text, "discountTotal"::text,
            "taxTotal"::text, "total"::text, "balanceDue"::text FROM "invoices" ${filter}`,
    ids ? [ids] : [],
  );
  const byId = new Map<string, StoredInvoice>(invoices.map((row) => [row.id, { ...row, lines: [] }]));
  const { rows: lines } = await pool.query(
    `SELECT "id"::text, "invoiceId"::text, "quantity"::text, "unitPrice"::text, "discountAmount"::text, "taxAmount"::text, "lineTotal"::text
       FROM "invoice_line_items" ${ids ? `WHERE "invoiceId" = ANY($1::uuid[])` : ""} ORDER BY "id"`,
    ids ? [ids] : [],
  );
  for (const { invoiceId, ...line } of lines) byId.get(invoiceId)?.lines.push(line);
  return byId;
}

/** Every difference between stored and independently computed totals, as readable strings (empty when all agree). */
export function totalsMismatches(stored: Map<string, StoredInvoice>): string[] {
  const problems: string[] = [];
  for (const invoice of stored.values()) {
    if (invoice.voided) {
      for (const field of ["subtotal", "discountTotal", "taxTotal", "total", "balanceDue"] as const) {
        if (invoice[field] !== STALE) problems.push(`voided ${invoice.id}: ${field} was changed to ${invoice[field]}`);
      }
      for (const line of invoice.lines) if (line.lineTotal !== STALE) problems.push(`voided ${invoice.id}: line ${line.id} lineTotal changed`);
      continue;
    }
    const expected = expectedInvoiceTotals(invoice.lines, invoice.amountPaid);
    for (const field of Object.keys(expected) as (keyof InvoiceTotals)[]) {
      if (invoice[field] !== expected[field]) problems.push(`${invoice.id}: ${field} is ${invoice[field]}, expected ${expected[field]}`);
    }
    for (const line of invoice.lines) {
      const lineTotal = expectedLineTotal(line);
      if (line.lineTotal !== lineTotal)
        problems.push(`${invoice.id} line ${line.id} (${line.quantity} × ${line.unitPrice}): lineTotal is ${line.lineTotal}, expected ${lineTotal}`);
    }
  }
  return problems;
}
