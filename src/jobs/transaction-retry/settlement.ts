import type { PrismaClient } from "../../lib/db.js";
import { type ConflictRetryOptions, withConflictRetry } from "../../lib/retry.js";
import type { SettlementMode } from "./contract.js";
import { EscrowAccountFrozenError, EscrowVersionConflictError } from "./settlement-errors.js";

/**
 * Settles one finance transaction against its escrow account (SPEC §3,
 * seed 000 "Transaction Optimization"): one ledger entry with balanceBefore
 * and balanceAfter, balances updated under the account's optimistic
 * `version`, the transaction COMPLETED — all in one database transaction.
 *
 * Sign conventions (the ledger's `amount` is the signed change of the
 * account's currentBalance; availableBalance moves by the same amount):
 *
 *   DEPOSIT                               +(amount − feeAmount)  money arrives, the fee is withheld from it
 *   WITHDRAWAL, DISTRIBUTION, FEE, REFUND −(amount + feeAmount)  money leaves escrow (a refund goes back
 *                                                                to the investor, a fee to the platform)
 *
 * A debit needs availableBalance ≥ amount + feeAmount, else the transaction
 * is FAILED for good with lastError "insufficient funds" and no ledger entry.
 *
 * Idempotency: the row is re-read inside the transaction and only a PENDING or
 * RETRYING one is settled, so a rerun after a crash (even one right after the
 * commit) finds it COMPLETED and skips it; and the ledger's unique
 * transactionId index makes the database itself refuse a second entry.
 *
 * The two modes (contract.ts): `serializable` reads transaction and account in
 * one statement at Serializable isolation, and concurrent settlements on one
 * account abort with 40001 and are rerun in place; `row-lock` runs at Read
 * Committed and locks the transaction row, then the account row (FOR UPDATE),
 * so concurrent settlements on one account queue on the lock.
 */
export type SettlementOutcome =
  | { kind: "settled"; escrowAccountId: string; amount: string; balanceBefore: string; balanceAfter: string }
  /** The row was no longer PENDING/RETRYING: someone else settled or ended it. */
  | { kind: "skipped"; status: string }
  | { kind: "failed"; reason: FailureReason; lastError: string };

/** Why a transaction was FAILED for good; also the metric label. */
export type FailureReason = "insufficient_funds" | "invalid_amount" | "no_escrow_account" | "account_closed" | "attempts_exhausted";

export interface SettleOptions {
  mode: SettlementMode;
  /** Passed to withConflictRetry (maxAttempts, backoff, onConflict). */
  conflictRetry?: ConflictRetryOptions;
  /** The job's signal: checked before the settlement writes, so a cancel arriving mid-settlement rolls it back whole. */
  signal?: AbortSignal;
}

interface TransactionRow {
  status: string;
  type: string;
  escrowAccountId: string | null;
  delta: string;
  debit: string;
  valid: boolean;
}

interface AccountRow {
  status: string;
  version: number;
  currentBalance: string;
  covered: boolean;
}

const transactionColumns = `
       t."status"::text AS "status", t."type"::text AS "type", t."escrowAccountId"::text AS "escrowAccountId",
       (CASE t."type" WHEN 'DEPOSIT' THEN t."amount" - t."feeAmount" ELSE -(t."amount" + t."feeAmount") END)::text AS "delta",
       (t."amount" + t."feeAmount")::text AS "debit",
       (t."amount" > 0 AND t."feeAmount" >= 0 AND (t."type" <> 'DEPOSIT' OR t."feeAmount" <= t."amount")) AS "valid"`;

// row-lock mode. Takes $1 transaction id, $2 its createdAt (the partition key,
// so only one partition is read). Locks the row and returns its status, type,
// account, the signed change it makes to the balance ("delta"), what a debit
// needs ("debit"), and whether its amounts make sense. Money stays NUMERIC
// and travels as text.
const lockTransactionSql = `
SELECT ${transactionColumns}
  FROM "transactions" t
 WHERE t."id" = $1::uuid AND t."createdAt" = $2
   FOR UPDATE`;

// serializable mode: no locks to take in order, so one round trip. Takes the
// same as above; returns the same plus the account's status, version,
// currentBalance and whether its availableBalance covers the debit (all null
// when there is no account).
const readTransactionAndAccountSql = `
SELECT ${transactionColumns},
       a."status"::text AS "accountStatus", a."version" AS "version", a."currentBalance"::text AS "currentBalance",
       (a."availableBalance" >= t."amount" + t."feeAmount") AS "covered"
  FROM "transactions" t
  LEFT JOIN "escrow_accounts" a ON a."id" = t."escrowAccountId"
 WHERE t."id" = $1::uuid AND t."createdAt" = $2`;

// row-lock mode, after the transaction row. Takes $1 account id, $2 the amount
// a debit needs. Locks the account and returns its status, version,
// currentBalance and whether availableBalance covers $2.
const lockAccountSql = `
SELECT a."status"::text AS "status", a."version", a."currentBalance"::text AS "currentBalance",
       (a."availableBalance" >= $2::numeric) AS "covered"
  FROM "escrow_accounts" a
 WHERE a."id" = $1::uuid
   FOR UPDATE`;

// Takes $1 transaction id, $2 its createdAt, $3 account id, $4 the account
// version read before, $5 the signed delta. Moves both balances by $5 only if
// the version is still $4, writes the ledger entry and completes the
// transaction. Returns balanceBefore/balanceAfter, or no row when the version
// moved (the caller treats that as a write conflict and rolls back).
const applySettlementSql = `
WITH account AS (
  UPDATE "escrow_accounts"
     SET "currentBalance" = "currentBalance" + $5::numeric,
         "availableBalance" = "availableBalance" + $5::numeric,
         "version" = "version" + 1,
         "updatedAt" = now()
   WHERE "id" = $3::uuid AND "version" = $4
  RETURNING "id", "currentBalance" - $5::numeric AS "balanceBefore", "currentBalance" AS "balanceAfter"
), ledger AS (
  INSERT INTO "escrow_ledger_entries" ("escrowAccountId", "transactionId", "amount", "balanceBefore", "balanceAfter")
  SELECT "id", $1::uuid, $5::numeric, "balanceBefore", "balanceAfter" FROM account
), completed AS (
  UPDATE "transactions"
     SET "status" = 'COMPLETED', "nextRetryAt" = NULL, "lastError" = NULL, "updatedAt" = now()
   WHERE "id" = $1::uuid AND "createdAt" = $2 AND EXISTS (SELECT 1 FROM account)
)
SELECT "balanceBefore"::text AS "balanceBefore", "balanceAfter"::text AS "balanceAfter" FROM account`;

// Takes $1 transaction id, $2 createdAt, $3 lastError. Ends the transaction
// as FAILED for good (no retry is due any more). Returns nothing.
const failForGoodSql = `
UPDATE "transactions"
   SET "status" = 'FAILED', "lastError" = $3, "nextRetryAt" = NULL, "updatedAt" = now()
 WHERE "id" = $1::uuid AND "createdAt" = $2`;

/**
 * Settles transaction (`id`, `createdAt`) in one database transaction, rerun
 * in place on write conflicts. Errors other than conflicts (a dropped
 * connection, a timeout, a FROZEN account, conflicts past maxAttempts) are
 * thrown for the caller to reschedule.
 */
export async function settleTransaction(prisma: PrismaClient, id: string, createdAt: Date, options: SettleOptions): Promise<SettlementOutcome> {
  const lock = options.mode === "row-lock";
  return withConflictRetry(
    prisma,
    async (tx): Promise<SettlementOutcome> => {
      const [row] = await tx.$queryRawUnsafe<(TransactionRow & Partial<AccountRow> & { accountStatus?: string | null })[]>(
        lock ? lockTransactionSql : readTransactionAndAccountSql,
        id,
        createdAt,
      );
      if (!row) return { kind: "skipped", status: "MISSING" };
      if (row.status !== "PENDING" && row.status !== "RETRYING") return { kind: "skipped", status: row.status };

      const fail = async (reason: FailureReason, lastError: string): Promise<SettlementOutcome> => {
        await tx.$executeRawUnsafe(failForGoodSql, id, createdAt, lastError);
        return { kind: "failed", reason, lastError };
      };
      if (!row.valid) return fail("invalid_amount", `invalid amount: a ${row.type} needs amount > 0 and feeAmount >= 0 (and, for a deposit, <= amount)`);
      if (!row.escrowAccountId) return fail("no_escrow_account", "no escrow account: the transaction names none");

      // Locks in one order everywhere (transaction row, then account row), so row-lock settlements cannot deadlock.
      const [account] = lock
        ? await tx.$queryRawUnsafe<AccountRow[]>(lockAccountSql, row.escrowAccountId, row.debit)
        : row.accountStatus
          ? [{ status: row.accountStatus, version: row.version!, currentBalance: row.currentBalance!, covered: row.covered! }]
          : [];
      if (!account) return fail("no_escrow_account", `no escrow account: ${row.escrowAccountId} does not exist`);
      if (account.status === "CLOSED") return fail("account_closed", `escrow account ${row.escrowAccountId} is CLOSED`);
      if (account.status === "FROZEN") throw new EscrowAccountFrozenError(row.escrowAccountId);
      if (row.type !== "DEPOSIT" && !account.covered) return fail("insufficient_funds", "insufficient funds");

      options.signal?.throwIfAborted();
      const [applied] = await tx.$queryRawUnsafe<{ balanceBefore: string; balanceAfter: string }[]>(
        applySettlementSql,
        id,
        createdAt,
        row.escrowAccountId,
        account.version,
        row.delta,
      );
      // No row: the version moved between our read and our write. Rolling back
      // and rereading is the only safe answer, so it counts as a conflict.
      if (!applied) throw new EscrowVersionConflictError(row.escrowAccountId, account.version);
      return { kind: "settled", escrowAccountId: row.escrowAccountId, amount: row.delta, ...applied };
    },
    { ...options.conflictRetry, isolationLevel: lock ? "ReadCommitted" : "Serializable" },
  );
}
