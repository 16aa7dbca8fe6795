import { defineSection, textTable } from "./report-section.js";

/**
 * Transactions the transaction-retry queue gave up on (FAILED for good:
 * insufficient funds, invalid amounts, a closed or missing account, or every
 * attempt spent), so operators see them: how many, why, and the latest ones
 * with their lastError.
 */
export interface FailedTransactionsData {
  total: number;
  /** Counts per lastError, most frequent first (top 10). */
  byError: { lastError: string; count: number }[];
  /** The most recently failed, newest first. */
  recent: { id: string; type: string; amount: string; escrowAccountId: string | null; retryCount: number; failedAt: string; lastError: string | null }[];
}

const recentLimit = 10;

// Takes nothing. Returns the number of FAILED transactions (uses the
// (status, nextRetryAt) index's leading column).
const totalSql = `SELECT count(*)::int AS "total" FROM "transactions" WHERE "status" = 'FAILED'`;

// Takes nothing. Returns up to 10 (lastError, count) pairs over FAILED transactions.
const byErrorSql = `
SELECT coalesce("lastError", '(none)') AS "lastError", count(*)::int AS "count"
  FROM "transactions" WHERE "status" = 'FAILED'
 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10`;

// Takes $1 a row limit. Returns the most recently failed transactions, newest first.
const recentSql = `
SELECT "id"::text AS "id", "type"::text AS "type", "amount"::text AS "amount", "escrowAccountId"::text AS "escrowAccountId",
       "retryCount", to_char("updatedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "failedAt", "lastError"
  FROM "transactions" WHERE "status" = 'FAILED'
 ORDER BY "updatedAt" DESC LIMIT $1`;

export const failedTransactionsSection = defineSection<FailedTransactionsData>({
  key: "failedTransactions",
  title: "Transactions FAILED for good (transaction-retry gave up)",
  async collect({ prisma }) {
    const [totals] = await prisma.$queryRawUnsafe<{ total: number }[]>(totalSql);
    const byError = await prisma.$queryRawUnsafe<FailedTransactionsData["byError"]>(byErrorSql);
    const recent = await prisma.$queryRawUnsafe<FailedTransactionsData["recent"]>(recentSql, recentLimit);
    return { total: totals?.total ?? 0, byError, recent };
  },
  render(data) {
    if (data.total === 0) return "  none";
    const shorten = (text: string | null) => (text && text.length > 80 ? `${text.slice(0, 77)}...` : (text ?? ""));
    return [
      `  ${data.total} transaction(s) FAILED for good. By lastError:`,
      textTable(data.byError.map((row) => ({ count: row.count, lastError: shorten(row.lastError) }))),
      `  Most recent ${Math.min(recentLimit, data.total)}:`,
      textTable(data.recent.map((row) => ({ ...row, lastError: shorten(row.lastError) }))),
    ].join("\n");
  },
});
