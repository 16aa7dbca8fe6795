import type pg from "pg";

/**
 * Escrow fixtures and the ledger invariants for the transaction-retry tests
 * and bench. The invariants are computed in SQL from the sign conventions of
 * src/jobs/transaction-retry/settlement.ts, written out again here on purpose: a bug there must
 * not be able to agree with itself.
 */
export const signedAmountSql = `CASE t."type" WHEN 'DEPOSIT' THEN t."amount" - t."feeAmount" ELSE -(t."amount" + t."feeAmount") END`;

/** Creates `count` ACTIVE accounts holding `openingBalance`; returns their ids. */
export async function createAccounts(pool: pg.Pool, count: number, openingBalance: string): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO "escrow_accounts" ("accountNumber", "currentBalance", "availableBalance")
     SELECT 'T-' || gen_random_uuid(), $2::numeric, $2::numeric FROM generate_series(1, $1) RETURNING "id"::text AS "id"`,
    [count, openingBalance],
  );
  return rows.map((row) => row.id);
}

/**
 * Inserts `count` due PENDING transactions spread round-robin over `accountIds`:
 * deposits, withdrawals, distributions, fees and refunds with fees on some,
 * amounts 1.00–100.99. Returns nothing; the rows are due now.
 */
export async function createDueTransactions(pool: pg.Pool, accountIds: string[], count: number): Promise<void> {
  await pool.query(
    `INSERT INTO "transactions" ("type", "status", "amount", "feeAmount", "escrowAccountId", "nextRetryAt", "createdAt")
     SELECT (ARRAY['DEPOSIT','WITHDRAWAL','DISTRIBUTION','DEPOSIT','FEE','REFUND']::"TransactionType"[])[1 + (g % 6)],
            'PENDING',
            (1 + (g * 37) % 100) + ((g * 13) % 100) / 100.0,
            CASE WHEN g % 4 = 0 THEN 0.25 ELSE 0 END,
            ($1::uuid[])[1 + (g % array_length($1::uuid[], 1))],
            now() - interval '1 second',
            now() - (g % 3) * interval '40 days'
       FROM generate_series(1, $2) g`,
    [accountIds, count],
  );
}

export interface LedgerCheck {
  /** Human-readable violations; empty when every invariant holds. */
  problems: string[];
  completed: number;
  ledgerEntries: number;
}

/**
 * Checks, for accounts that all opened at `openingBalance`:
 * - currentBalance and availableBalance = opening + Σ signed amounts of COMPLETED transactions;
 * - the ledger, ordered by entryNumber, is an unbroken chain from the opening balance to currentBalance;
 * - every COMPLETED transaction has exactly one entry with its signed amount, and no other transaction has one.
 */
export async function checkLedger(pool: pg.Pool, accountIds: string[], openingBalance: string): Promise<LedgerCheck> {
  const problems: string[] = [];
  const balances = await pool.query<{ id: string; current: string; available: string; expected: string }>(
    `SELECT a."id"::text AS id, a."currentBalance"::text AS current, a."availableBalance"::text AS available,
            ($2::numeric + coalesce((SELECT sum(${signedAmountSql}) FROM "transactions" t
                                      WHERE t."escrowAccountId" = a."id" AND t."status" = 'COMPLETED'), 0))::text AS expected
       FROM "escrow_accounts" a WHERE a."id" = ANY($1::uuid[])`,
    [accountIds, openingBalance],
  );
  for (const row of balances.rows) {
    if (Number(row.current) !== Number(row.expected))
      problems.push(`account ${row.id}: currentBalance ${row.current} but opening + completed = ${row.expected}`);
    if (Number(row.available) !== Number(row.expected)) problems.push(`account ${row.id}: availableBalance ${row.available} but expected ${row.expected}`);
  }

  const chain = await pool.query<{ escrowAccountId: string; entryNumber: string; balanceBefore: string; previous: string | null; sumOk: boolean }>(
    `SELECT * FROM (
       SELECT e."escrowAccountId"::text AS "escrowAccountId", e."entryNumber"::text AS "entryNumber", e."balanceBefore"::text AS "balanceBefore",
              coalesce(lag(e."balanceAfter") OVER (PARTITION BY e."escrowAccountId" ORDER BY e."entryNumber"), $2::numeric)::text AS previous,
              e."balanceAfter" = e."balanceBefore" + e."amount" AS "sumOk"
         FROM "escrow_ledger_entries" e WHERE e."escrowAccountId" = ANY($1::uuid[])) c
      WHERE c."balanceBefore"::numeric <> c.previous::numeric OR NOT c."sumOk"`,
    [accountIds, openingBalance],
  );
  for (const row of chain.rows.slice(0, 5)) {
    problems.push(
      `ledger of ${row.escrowAccountId} broken at entry ${row.entryNumber}: balanceBefore ${row.balanceBefore}, previous balanceAfter ${row.previous}`,
    );
  }
  if (chain.rows.length > 5) problems.push(`… ${chain.rows.length - 5} more broken links`);

  const last = await pool.query<{ id: string }>(
    `SELECT a."id"::text AS id FROM "escrow_accounts" a
      WHERE a."id" = ANY($1::uuid[])
        AND a."currentBalance" <> coalesce((SELECT e."balanceAfter" FROM "escrow_ledger_entries" e WHERE e."escrowAccountId" = a."id" ORDER BY e."entryNumber" DESC LIMIT 1), $2::numeric)`,
    [accountIds, openingBalance],
  );
  for (const row of last.rows) problems.push(`account ${row.id}: currentBalance differs from its last ledger balanceAfter`);

  const pairing = await pool.query<{ kind: string; n: number }>(
    `SELECT 'transaction with more than one ledger entry' AS kind, count(*)::int AS n
       FROM (SELECT "transactionId" FROM "escrow_ledger_entries" GROUP BY 1 HAVING count(*) > 1) d
     UNION ALL
     SELECT 'COMPLETED transaction without its ledger entry', count(*)::int FROM "transactions" t
      WHERE t."status" = 'COMPLETED' AND NOT EXISTS (SELECT 1 FROM "escrow_ledger_entries" e WHERE e."transactionId" = t."id" AND e."amount" = ${signedAmountSql})
     UNION ALL
     SELECT 'ledger entry of a transaction that is not COMPLETED', count(*)::int FROM "escrow_ledger_entries" e
      WHERE NOT EXISTS (SELECT 1 FROM "transactions" t WHERE t."id" = e."transactionId" AND t."status" = 'COMPLETED')`,
  );
  for (const row of pairing.rows) if (row.n > 0) problems.push(`${row.n} × ${row.kind}`);

  const counts = await pool.query<{ completed: number; entries: number }>(
    `SELECT (SELECT count(*) FROM "transactions" WHERE "status" = 'COMPLETED')::int AS completed, (SELECT count(*) FROM "escrow_ledger_entries")::int AS entries`,
  );
  return { problems, completed: counts.rows[0]?.completed ?? 0, ledgerEntries: counts.rows[0]?.entries ?? 0 };
}

/** Transactions by status, e.g. { COMPLETED: 1990, FAILED: 10 }. */
export async function statusCounts(pool: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ status: string; n: number }>(`SELECT "status"::text AS status, count(*)::int AS n FROM "transactions" GROUP BY 1`);
  return Object.fromEntries(rows.map((row) => [row.status, row.n]));
}

export interface TransactionSpec {
  type: "DEPOSIT" | "WITHDRAWAL" | "DISTRIBUTION" | "FEE" | "REFUND";
  amount: string;
  feeAmount?: string;
  escrowAccountId: string | null;
  status?: "PENDING" | "RETRYING" | "COMPLETED" | "FAILED" | "CANCELLED";
}

/** Inserts one transaction, due a second ago; returns its primary key. */
export async function insertTransaction(pool: pg.Pool, spec: TransactionSpec): Promise<{ id: string; createdAt: Date }> {
  const { rows } = await pool.query<{ id: string; createdAt: Date }>(
    `INSERT INTO "transactions" ("type", "status", "amount", "feeAmount", "escrowAccountId", "nextRetryAt")
     VALUES ($1, $2, $3::numeric, $4::numeric, $5::uuid, now() - interval '1 second') RETURNING "id"::text AS "id", "createdAt"`,
    [spec.type, spec.status ?? "PENDING", spec.amount, spec.feeAmount ?? "0", spec.escrowAccountId],
  );
  return rows[0]!;
}

export async function readTransaction(pool: pg.Pool, id: string) {
  const { rows } = await pool.query<{ status: string; retryCount: number; nextRetryAt: Date | null; lastError: string | null; ledgerEntries: number }>(
    `SELECT t."status"::text AS "status", t."retryCount", t."nextRetryAt", t."lastError",
            (SELECT count(*) FROM "escrow_ledger_entries" e WHERE e."transactionId" = t."id")::int AS "ledgerEntries"
       FROM "transactions" t WHERE t."id" = $1::uuid`,
    [id],
  );
  return rows[0]!;
}

export async function readAccount(pool: pg.Pool, id: string) {
  const { rows } = await pool.query<{ currentBalance: string; availableBalance: string; version: number }>(
    `SELECT "currentBalance"::text AS "currentBalance", "availableBalance"::text AS "availableBalance", "version" FROM "escrow_accounts" WHERE "id" = $1::uuid`,
    [id],
  );
  return rows[0]!;
}
