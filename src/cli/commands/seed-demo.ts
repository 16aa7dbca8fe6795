import type { Command } from "commander";
import type pg from "pg";
import { quoteIdent } from "../../lib/db.js";
import { withSession } from "../../lib/session.js";
import { createPartition } from "../../partitions/create-partition.js";
import { defaultPartitionRows } from "../../partitions/default-partition-rows.js";
import { monthFromKey } from "../../partitions/month-bounds.js";
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

/** The tables the demo data fills (the idempotency keys through the trigger on transactions); ANALYZEd after seeding so `db report` and the planner see their rows at once. */
const seededTables = ["patients", "invoices", "invoice_line_items", "users", "escrow_accounts", "transactions", "transaction_idempotency_keys"] as const;

// Takes nothing. Makes this backend publish its pending statistics before it answers (PostgreSQL 15+;
// a no-op on 14, whose statistics collector has no such request).
const flushStatisticsSql = `
DO $$
BEGIN
  IF to_regproc('pg_stat_force_next_flush') IS NOT NULL THEN PERFORM pg_stat_force_next_flush(); END IF;
END $$`;

/** How long the seed's partition DDL may wait for a table lock; a demo database is idle. */
const lockTimeoutMs = 5000;

/**
 * Seeds a clean first run: the current month's partition of `transactions`
 * exists before the demo rows are written, so none lands in the default
 * partition; rows an earlier seed left there move into their months'
 * partitions; the seeded tables are analyzed. Returns the partitions created.
 */
async function seedDemoData(client: pg.ClientBase): Promise<string[]> {
  const created: string[] = [];
  const current = await createPartition(client, "transactions", new Date(), { lockTimeoutMs });
  if (current.created) created.push(current.name);
  await client.query(demoDataSql);
  // Demo rows of another month (an older seed, or a month that turned meanwhile) get that month's partition.
  for (const { month } of await defaultPartitionRows(client, "transactions")) {
    const result = await createPartition(client, "transactions", monthFromKey(month), { lockTimeoutMs });
    if (result.created) created.push(result.name);
  }
  // A backend publishes its row counts when idle, at most once a second: published after the ANALYZE, the
  // seed's inserts would count as changes since it, and `db report` would list the tables as overdue.
  await client.query(flushStatisticsSql);
  await client.query(`ANALYZE ${seededTables.map(quoteIdent).join(", ")}`);
  return created;
}

export function registerSeedDemoCommand(program: Command): void {
  program
    .command("seed-demo")
    .description("insert demo data (patients, invoices, users, escrow accounts, due transactions) into an empty database, with its partitions, analyzed")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      // The seed's statements are long by design: they are not the slow queries SLOW_QUERY_MS is there to catch.
      const context = createCliContext({ quiet: options.json, expectSlowQueries: true });
      try {
        const db = context.db();
        const { prisma } = db;
        // It creates partitions (DDL): a session of its own, on DIRECT_DATABASE_URL when set.
        const partitionsCreated = await withSession(db, ({ client }) => seedDemoData(client));
        const counts = {
          patients: await prisma.patient.count(),
          invoices: await prisma.invoice.count(),
          users: await prisma.user.count(),
          escrowAccounts: await prisma.escrowAccount.count(),
          transactions: await prisma.transaction.count(),
        };
        if (options.json) printJson({ ...counts, partitionsCreated });
        else {
          console.log(
            `demo data present: ${Object.entries(counts)
              .map(([name, count]) => `${count} ${name}`)
              .join(", ")}`,
          );
          if (partitionsCreated.length > 0) console.log(`partitions created: ${partitionsCreated.join(", ")}`);
        }
      } finally {
        await context.close();
      }
    });
}
