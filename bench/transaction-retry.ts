import { defaultSettlementMode, type SettlementMode, type TransactionRetryResult as SweepResult } from "../src/jobs/transaction-retry/contract.js";
import { sweepDueTransactions } from "../src/jobs/transaction-retry/handler.js";
import { createDb, type Db } from "../src/lib/db.js";
import { createLogger } from "../src/lib/logger.js";
import { sweepOptions } from "../test/support/sweep-options.js";
import { benchRun } from "./bench-run.js";
import { type BenchRow, type BenchSection, pairedRatio } from "./bench-section.js";
import { pairedRounds } from "./paired-rounds.js";
import { freshBenchDatabase } from "./support.js";

/**
 * transaction-retry (issue 7): settled transactions per second when 4 sweeps,
 * each with its own connection pool (as separate worker processes would),
 * settle due transactions spread over only 5 escrow accounts — so nearly
 * every settlement contends for an account row. The Serializable design and
 * the same settlement with SELECT … FOR UPDATE at Read Committed run on the
 * same data in paired rounds, and each run's ledger is checked.
 */
const transactionsPerRun = 500;
/** Paired rounds: each runs both designs back to back, alternating which goes first. */
const rounds = Number(process.env.BENCH_SETTLEMENT_ROUNDS ?? 5);
const sweeps = 4;
const opening = "10000000.00";

interface RunFigures {
  mode: SettlementMode;
  settledPerSecond: number;
  conflictsRetried: number;
  settled: number;
  invariantsHold: boolean;
}

// Takes $1 opening balance. Returns how many invariants are broken across the
// run: a balance that is not opening + Σ completed signed amounts, a ledger
// link whose balanceBefore is not the previous balanceAfter, a transaction
// with other than one ledger entry per COMPLETED state, a transaction neither
// settled nor waiting for its next attempt (one that ran out of in-place
// conflict retries is rescheduled, RETRYING, and may settle later in the run).
const violationsSql = `
SELECT
  (SELECT count(*) FROM "escrow_accounts" a
    WHERE a."currentBalance" <> $1::numeric + coalesce((SELECT sum(CASE t."type" WHEN 'DEPOSIT' THEN t."amount" - t."feeAmount" ELSE -(t."amount" + t."feeAmount") END)
                                                         FROM "transactions" t WHERE t."escrowAccountId" = a."id" AND t."status" = 'COMPLETED'), 0))
+ (SELECT count(*) FROM (SELECT "balanceBefore", lag("balanceAfter", 1, $1::numeric) OVER (PARTITION BY "escrowAccountId" ORDER BY "entryNumber") AS previous
                           FROM "escrow_ledger_entries") c WHERE c."balanceBefore" <> c.previous)
+ (SELECT count(*) FROM "transactions" t
    WHERE (t."status" = 'COMPLETED') <> (SELECT count(*) = 1 FROM "escrow_ledger_entries" e WHERE e."transactionId" = t."id"))
+ (SELECT count(*) FROM "transactions" WHERE "status" NOT IN ('COMPLETED', 'RETRYING')) AS "violations"`;

async function prepare(db: Db): Promise<void> {
  await db.pool.query(`TRUNCATE "escrow_ledger_entries", "transactions", "escrow_accounts"`);
  await db.pool.query(
    `INSERT INTO "escrow_accounts" ("accountNumber", "currentBalance", "availableBalance") SELECT 'B-' || g, $1::numeric, $1::numeric FROM generate_series(1, 5) g`,
    [opening],
  );
  await db.pool.query(
    `INSERT INTO "transactions" ("type", "status", "amount", "feeAmount", "escrowAccountId", "nextRetryAt")
     SELECT (ARRAY['DEPOSIT','WITHDRAWAL','DISTRIBUTION','FEE','REFUND']::"TransactionType"[])[1 + (g % 5)], 'PENDING',
            1 + (g % 97) + (g % 89) / 100.0, CASE WHEN g % 3 = 0 THEN 0.10 ELSE 0 END, a."id", now() - interval '1 second'
       FROM generate_series(1, $1) g
       JOIN (SELECT "id", row_number() OVER (ORDER BY "id") - 1 AS n FROM "escrow_accounts") a ON a.n = g % 5`,
    [transactionsPerRun],
  );
  await db.pool.query(`VACUUM ANALYZE "transactions", "escrow_accounts"`);
}

async function run(url: string, setup: Db, mode: SettlementMode): Promise<RunFigures> {
  await prepare(setup);
  const logger = createLogger({ level: "silent" });
  const pools = Array.from({ length: sweeps }, () => createDb({ url, poolSize: 2, logger }));
  try {
    const start = performance.now();
    const results: SweepResult[] = await Promise.all(
      pools.map((db) => sweepDueTransactions(db.prisma, sweepOptions({ limit: transactionsPerRun, pageSize: 20, mode }))),
    );
    const seconds = (performance.now() - start) / 1000;
    const settled = results.reduce((sum, result) => sum + result.settled, 0);
    const [row] = (await setup.pool.query<{ violations: string }>(violationsSql, [opening])).rows;
    process.stderr.write(
      `bench: transaction-retry ${mode}: ${settled} settled in ${seconds.toFixed(1)} s, ${results.reduce((sum, result) => sum + result.rescheduled, 0)} rescheduled, ` +
        `${results.reduce((sum, result) => sum + result.conflictsRetried, 0)} conflicts retried, ${row?.violations} invariant violations\n`,
    );
    return {
      mode,
      settled,
      settledPerSecond: settled / seconds,
      conflictsRetried: results.reduce((sum, result) => sum + result.conflictsRetried, 0),
      invariantsHold: Number(row?.violations) === 0,
    };
  } finally {
    await Promise.all(pools.map((db) => db.close()));
  }
}

export const transactionRetryBench: BenchSection = {
  name: "transaction-retry",
  async run(): Promise<BenchRow[]> {
    const url = await freshBenchDatabase("transaction_retry");
    const setup = createDb({ url, poolSize: 2, logger: createLogger({ level: "silent" }) });
    const other: SettlementMode = defaultSettlementMode === "serializable" ? "row-lock" : "serializable";
    try {
      // Baseline: the design we did not choose; subject: the default. Each run prepares the same data first (untimed).
      const paired = await pairedRounds({
        label: "transaction-retry",
        rounds,
        baseline: () => run(url, setup, other),
        subject: () => run(url, setup, defaultSettlementMode),
        ratio: (baseline, chosen) => chosen.settledPerSecond / baseline.settledPerSecond,
        show: (figures) => `${figures.settledPerSecond.toFixed(0)} tx/s`,
      });
      const all = paired.rounds.flatMap((round) => [round.baseline, round.subject]);
      const allHold = all.every((figure) => figure.invariantsHold);
      const of = (mode: SettlementMode) => (round: (typeof paired.rounds)[number]) => (round.subject.mode === mode ? round.subject : round.baseline);
      const rate = (mode: SettlementMode) => paired.spreadOf((round) => of(mode)(round).settledPerSecond).median;
      const serializableVsRowLock = paired.spreadOf((round) => of("serializable")(round).settledPerSecond / of("row-lock")(round).settledPerSecond);
      const conflicts = paired.spreadOf((round) => of("serializable")(round).conflictsRetried).median;
      const count = paired.rounds.length;
      return [
        {
          name: `settled/s, ${transactionsPerRun} due over 5 accounts, ${sweeps} concurrent sweeps: Serializable vs SELECT … FOR UPDATE at Read Committed (${count} paired rounds; ratio = Serializable / row-lock per round)`,
          value: rate("serializable"),
          baseline: rate("row-lock"),
          unit: "tx/s",
          ...pairedRatio(serializableVsRowLock, count),
          goal: "ledger invariants hold in every run",
          met: allHold,
        },
        {
          name: `the default design (${defaultSettlementMode}) vs the other (${other}) (ratio = default / other per round)`,
          value: rate(defaultSettlementMode),
          baseline: rate(other),
          unit: "tx/s",
          ...pairedRatio(paired.ratio, count),
          goal: ">= 1.00 (the default is the faster)",
          met: paired.ratio.median >= 1 && allHold,
        },
        { name: `conflicts retried in place per run of ${transactionsPerRun}, Serializable design (median)`, value: conflicts, unit: "conflicts" },
      ];
    } finally {
      await setup.close();
      await benchRun.dropDatabase(url);
    }
  },
};
