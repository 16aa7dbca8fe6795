import pg from "pg";
import { loadConfig } from "../src/lib/config.js";
import { migrateQueueDatabase } from "../src/lib/migrate.js";
import { Producer } from "../src/queues/producer.js";
import { benchRun } from "./bench-run.js";
import { type BenchRow, type BenchSection, pairedRatio } from "./bench-section.js";
import { median, pairedRounds, type Spread } from "./paired-rounds.js";
import { copyOfSource, type SourceDatabase } from "./queue-backend-side.js";
import { benchRedisUrl, freshBenchDatabase } from "./support.js";
import { benchPayload, type LatencyFigures, measureCommitToStart, QUEUE, RATE } from "./transactional-enqueue-latency.js";

/**
 * Enqueue in the application's transaction, two questions:
 *
 * 1. What does `producer.enqueue(queue, payload, { tx })` add to a
 *    transaction, against a plain INSERT of the same payload as jsonb into a
 *    table with a bigserial key? Each side runs TRANSACTIONS transactions one
 *    after another on one pg client (BEGIN; the statement; COMMIT), and
 *    reports the median time of a whole transaction and of the statement
 *    alone. Paired rounds, all sides on the same fresh database copy per
 *    round; on the Redis backend the enqueue is an outbox row, shown beside.
 * 2. Commit→start latency at a steady RATE jobs/s on the PostgreSQL backend
 *    and, through the outbox relay, on Redis (transactional-enqueue-latency.ts).
 */
const TRANSACTIONS = Number(process.env.BENCH_TX_TRANSACTIONS ?? 300);
const ROUNDS = Number(process.env.BENCH_TX_ROUNDS ?? 5);
const LATENCY_ROUNDS = Number(process.env.BENCH_TX_LATENCY_ROUNDS ?? 3);

const plainTable = "bench_plain_insert";
// Takes $1 the payload as JSON text.
const plainInsertSql = `INSERT INTO "${plainTable}" ("payload") VALUES ($1::jsonb)`;

interface CostFigures {
  /** Median µs of BEGIN … COMMIT. */
  transactionUs: number;
  /** Median µs of the statement alone. */
  statementUs: number;
}

/** Runs TRANSACTIONS transactions of `statement` on one client of `url`; the medians of their times. */
async function timeTransactions(url: string, statement: (client: pg.Client) => Promise<unknown>): Promise<CostFigures> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const transactions: number[] = [];
    const statements: number[] = [];
    for (let n = 0; n < TRANSACTIONS; n++) {
      const begin = performance.now();
      await client.query("BEGIN");
      const before = performance.now();
      await statement(client);
      statements.push(performance.now() - before);
      await client.query("COMMIT");
      transactions.push(performance.now() - begin);
    }
    return { transactionUs: median(transactions) * 1000, statementUs: median(statements) * 1000 };
  } finally {
    await client.end();
  }
}

async function prepareSource(): Promise<SourceDatabase> {
  const url = await freshBenchDatabase("txenqueue");
  await migrateQueueDatabase(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE TABLE "${plainTable}" ("id" BIGSERIAL PRIMARY KEY, "payload" JSONB NOT NULL)`);
  } finally {
    await client.end();
  }
  return { name: decodeURIComponent(new URL(url).pathname.slice(1)), url };
}

/** The producer's enqueue with { tx } on `backend`; neither backend's store is contacted (only the caller's client is). */
function enqueueSide(backend: "postgres" | "redis") {
  return async ({ url }: { url: string }) => {
    const producer = Producer.fromConfig(
      loadConfig({
        QUEUE_BACKEND: backend,
        DATABASE_URL: url,
        QUEUE_PREFIX: benchRun.queuePrefix(),
        ...(backend === "redis" ? { REDIS_URL: benchRedisUrl } : {}),
      }),
    );
    try {
      return await timeTransactions(url, (client) => producer.enqueue(QUEUE, benchPayload, { tx: client }));
    } finally {
      await producer.close();
    }
  };
}

export const transactionalEnqueueBench: BenchSection = {
  name: "transactional-enqueue",
  async run(): Promise<BenchRow[]> {
    const source = await prepareSource();
    try {
      const payloadJson = JSON.stringify(benchPayload);
      const cost = await pairedRounds({
        label: "transactional-enqueue cost",
        rounds: ROUNDS,
        warmUpRounds: 1,
        prepare: (round) => copyOfSource(source, `tx_cost_${round < 0 ? "warm" : round}`),
        release: (copy) => copy.drop(),
        baseline: ({ url }) => timeTransactions(url, (client) => client.query(plainInsertSql, [payloadJson])),
        subject: enqueueSide("postgres"),
        others: { "outbox (Redis backend)": enqueueSide("redis") },
        ratio: (insert, enqueue) => enqueue.transactionUs / insert.transactionUs,
        show: (figures) => `transaction ${figures.transactionUs.toFixed(0)} µs, statement ${figures.statementUs.toFixed(0)} µs`,
      });
      const latency = await pairedRounds({
        label: "commit→start",
        rounds: LATENCY_ROUNDS,
        baseline: () => measureCommitToStart(source, "postgres"),
        subject: () => measureCommitToStart(source, "redis"),
        ratio: (postgres, redis) => redis.p99Ms / postgres.p99Ms,
        show: (figures) => `p50 ${figures.p50Ms.toFixed(1)} ms, p99 ${figures.p99Ms.toFixed(1)} ms (${figures.jobs} jobs)`,
      });
      return [...costRows(cost), ...latencyRows(latency)];
    } finally {
      await benchRun.dropDatabase(source.name);
    }
  },
};

type Paired<T> = Awaited<ReturnType<typeof pairedRounds<unknown, T, T>>>;

function costRows(cost: Paired<CostFigures>): BenchRow[] {
  const rounds = cost.rounds.length;
  const setting = `bulk-messaging payload of 10 patients, ${TRANSACTIONS} transactions per side on one pg client, ${rounds} paired rounds`;
  const outbox = (round: (typeof cost.rounds)[number]) => round.others["outbox (Redis backend)"] as CostFigures;
  const of = (figure: (round: (typeof cost.rounds)[number]) => number) => cost.spreadOf(figure);
  const statementRatio = of((round) => round.subject.statementUs / round.baseline.statementUs);
  const row = (name: string, value: Spread, baseline: Spread, ratio: Spread, goal = true): BenchRow => ({
    name,
    value: value.median,
    unit: "µs",
    baseline: baseline.median,
    ...pairedRatio(ratio, rounds),
    ...(goal ? { goal: "<= 2.00", met: ratio.median <= 2 } : {}),
  });
  return [
    row(
      `whole transaction (BEGIN; statement; COMMIT), producer.enqueue(…, { tx }) on the PostgreSQL backend vs a plain INSERT of the payload as jsonb (${setting}; ratio = enqueue / insert per round)`,
      of((round) => round.subject.transactionUs),
      of((round) => round.baseline.transactionUs),
      cost.ratio,
    ),
    row(
      "the statement alone, same transactions: producer.enqueue(…, { tx }) (validation, BullMQ's job options, bullmq.add_job) vs the INSERT (ratio = enqueue / insert per round)",
      of((round) => round.subject.statementUs),
      of((round) => round.baseline.statementUs),
      statementRatio,
    ),
    row(
      "whole transaction, producer.enqueue(…, { tx }) on the Redis backend (an outbox row, dbjobs.add_to_outbox) vs the INSERT (informational; ratio = enqueue / insert per round)",
      of((round) => outbox(round).transactionUs),
      of((round) => round.baseline.transactionUs),
      of((round) => outbox(round).transactionUs / round.baseline.transactionUs),
      false,
    ),
  ];
}

function latencyRows(latency: Paired<LatencyFigures>): BenchRow[] {
  const runs = latency.rounds.length;
  const figure = (name: string, pick: (round: (typeof latency.rounds)[number]) => number, goal?: number): BenchRow => {
    const values = latency.spreadOf(pick);
    return {
      name,
      value: values.median,
      unit: "ms",
      valueRange: { min: values.min, max: values.max, runs },
      ...(goal === undefined ? {} : { goal: `< ${goal} ms`, met: values.median < goal }),
    };
  };
  const setting = `${RATE} transactions/s, one job each, worker concurrency 8; median of ${runs} runs`;
  return [
    figure(`commit→start latency p50, PostgreSQL backend (${setting})`, (round) => round.baseline.p50Ms),
    figure(`commit→start latency p99, PostgreSQL backend (${setting})`, (round) => round.baseline.p99Ms, 50),
    figure(`commit→start latency p50, Redis backend through the outbox relay (${setting}; informational)`, (round) => round.subject.p50Ms),
    figure(`commit→start latency p99, Redis backend through the outbox relay (${setting}; informational)`, (round) => round.subject.p99Ms),
  ];
}
