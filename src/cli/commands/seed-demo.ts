import type { Command } from "commander";
import { createCliContext, printJson } from "../context.js";

// Takes nothing. Inserts demo patients, invoices with line items (totals left
// stale on purpose, for invoice-totals to fix), users, escrow accounts and
// due transactions. Skips everything when patients already exist.
const demoDataSql = `
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM "patients" LIMIT 1) THEN RETURN; END IF;
  INSERT INTO "patients" ("firstName", "lastName", "email", "phone")
  SELECT 'Pat' || g, 'Demo' || g, 'patient' || g || '@example.test', '+1555' || lpad(g::text, 7, '0')
    FROM generate_series(1, 1000) g;
  INSERT INTO "invoices" ("invoiceNumber", "patientId", "status", "amountPaid", "voidedAt")
  SELECT 'INV-' || lpad(row_number() OVER ()::text, 6, '0'), p."id", 'issued', (random() * 50)::numeric(14,2),
         CASE WHEN random() < 0.05 THEN now() END
    FROM "patients" p, generate_series(1, 2);
  INSERT INTO "invoice_line_items" ("invoiceId", "description", "quantity", "unitPrice", "discountAmount", "taxAmount")
  SELECT i."id", 'Service ' || g, (1 + floor(random() * 4))::numeric, (10 + random() * 190)::numeric(14,2),
         (random() * 5)::numeric(14,2), (random() * 8)::numeric(14,2)
    FROM "invoices" i, generate_series(1, 5) g;
  INSERT INTO "users" ("email", "name", "lastActiveAt")
  SELECT 'user' || g || '@example.test', 'User ' || g, now() - (g || ' minutes')::interval FROM generate_series(1, 200) g;
  INSERT INTO "escrow_accounts" ("accountNumber", "currentBalance", "availableBalance")
  SELECT 'ESC-' || lpad(g::text, 4, '0'), 10000, 10000 FROM generate_series(1, 20) g;
  INSERT INTO "transactions" ("type", "status", "amount", "escrowAccountId", "idempotencyKey", "nextRetryAt")
  SELECT (ARRAY['DEPOSIT','WITHDRAWAL','DISTRIBUTION']::"TransactionType"[])[1 + (g % 3)], 'PENDING',
         (1 + random() * 100)::numeric(14,2), e."id", 'demo-' || e."accountNumber" || '-' || g, now()
    FROM "escrow_accounts" e, generate_series(1, 10) g;
END $$`;

export function registerSeedDemoCommand(program: Command): void {
  program
    .command("seed-demo")
    .description("insert demo data (patients, invoices, users, escrow accounts, due transactions) into an empty database")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const context = createCliContext({ quiet: options.json });
      try {
        const { prisma } = context.db();
        await prisma.$executeRawUnsafe(demoDataSql);
        const counts = {
          patients: await prisma.patient.count(),
          invoices: await prisma.invoice.count(),
          users: await prisma.user.count(),
          escrowAccounts: await prisma.escrowAccount.count(),
          transactions: await prisma.transaction.count(),
        };
        if (options.json) printJson(counts);
        else
          console.log(
            `demo data present: ${Object.entries(counts)
              .map(([name, count]) => `${count} ${name}`)
              .join(", ")}`,
          );
      } finally {
        await context.close();
      }
    });
}
