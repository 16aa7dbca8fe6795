import { Redis } from "ioredis";
import pg from "pg";
import { parseHistoryQuery } from "../src/history/history-query.js";
import { searchHistory } from "../src/history/search-history.js";
import { createPartition } from "../src/partitions/create-partition.js";
import { addPeriods, periodStart } from "../src/partitions/period-bounds.js";
import { benchRun } from "./bench-run.js";
import { type BenchRow, type BenchSection, pairedRatio } from "./bench-section.js";
import { CONCURRENCY, JOBS, projectRound, type Round, WARM_UP_JOBS } from "./noop-worker.js";
import { median, pairedRounds } from "./paired-rounds.js";
import { benchRedisUrl, freshBenchDatabase } from "./support.js";

/**
 * The job history's two costs.
 *
 * 1. Throughput: no-op jobs through the project's worker (as bench/noop-worker.ts,
 *    Redis backend) with HISTORY_ENABLED=false against the same with history
 *    on, in paired rounds on one migrated database. The window ends at the
 *    last completion, so it holds every full-batch flush; the last partial
 *    batch is written at close, after it (at most one flush of HISTORY_BATCH_SIZE
 *    rows out of JOBS / HISTORY_BATCH_SIZE).
 * 2. Search: BENCH_HISTORY_ROWS rows (10 million by default; generated with
 *    INSERT … SELECT generate_series into 30 daily partitions, 7 queues, 5%
 *    failed with 20 error groups), then BENCH_HISTORY_QUERIES searches of each
 *    kind (payload field, fingerprint, queue + state + time, error text, job
 *    id, the next page by cursor), timed one by one through searchHistory; the
 *    p99 over all of them is the figure.
 */
const HISTORY_ROWS = Number(process.env.BENCH_HISTORY_ROWS ?? 10_000_000);
const QUERIES = Number(process.env.BENCH_HISTORY_QUERIES ?? 50);
const ROUNDS = Number(process.env.BENCH_HISTORY_ROUNDS ?? 9);
const DAYS = 30;
/** Jobs per batch row in the generated history: 1 is a quiet system's shape (a flush a second holds a job or none) and the most rows to search. */
const JOBS_PER_BATCH = Number(process.env.BENCH_HISTORY_JOBS_PER_BATCH ?? 1);

const workerSide = (connection: Redis, databaseUrl: string, historyEnabled: boolean) =>
  projectRound(connection, { LOG_LEVEL: "info", DATABASE_URL: databaseUrl, HISTORY_ENABLED: String(historyEnabled) });

async function throughputRows(): Promise<BenchRow[]> {
  const databaseUrl = await freshBenchDatabase("history-throughput");
  const connection = new Redis(benchRedisUrl, { maxRetriesPerRequest: null });
  try {
    const rate = (round: Round) => round.jobs / (round.ms / 1000);
    const cpuPerJob = (round: Round) => round.cpuUs / round.jobs;
    const paired = await pairedRounds({
      label: "history-throughput",
      rounds: ROUNDS,
      warmUpRounds: 1,
      baseline: () => workerSide(connection, databaseUrl, false),
      subject: () => workerSide(connection, databaseUrl, true),
      ratio: (off, on) => rate(on) / rate(off),
      show: (round) => `${Math.round(rate(round))} jobs/s, ${cpuPerJob(round).toFixed(1)} µs cpu/job`,
    });
    const label = `${JOBS} jobs, the first ${WARM_UP_JOBS} untimed, concurrency ${CONCURRENCY}, Redis backend, ${paired.rounds.length} paired rounds`;
    return [
      {
        name: `no-op jobs/s with job history on vs off (${label}; ratio = on / off per round)`,
        value: paired.spreadOf((round) => rate(round.subject)).median,
        unit: "jobs/s",
        baseline: paired.spreadOf((round) => rate(round.baseline)).median,
        ...pairedRatio(paired.ratio, paired.rounds.length),
        goal: ">= 0.90",
        met: paired.ratio.median >= 0.9,
      },
      {
        name: `worker CPU per no-op job with job history on vs off (${label}; ratio = off / on per round, informational)`,
        value: paired.spreadOf((round) => cpuPerJob(round.subject)).median,
        unit: "µs/job",
        baseline: paired.spreadOf((round) => cpuPerJob(round.baseline)).median,
        ...pairedRatio(
          paired.spreadOf((round) => cpuPerJob(round.baseline) / cpuPerJob(round.subject)),
          paired.rounds.length,
        ),
      },
    ];
  } finally {
    connection.disconnect();
    await benchRun.dropDatabase(databaseUrl);
  }
}

// Takes $1 the job count and $2 the newest day's end; the statement's own series (first..last) replaces the
// generate_series below. Inserts those jobs spread evenly over the 30 days before it, as batch rows of one
// queue and state holding up to JOBS_PER_BATCH jobs: 7 queues, 10,000 campaigns, every 20th job failed with
// one of 20 error groups. The jobs of a batch finish a millisecond apart, as a busy queue's flush would hold them.
const generateSql = `
INSERT INTO "dbjobs"."job_history"
  ("batch_id", "queue", "state", "first_finished_at", "finished_at", "job_ids", "id_range", "payloads", "jobs", "fingerprint", "error_text")
SELECT gen_random_uuid(), j.queue, j.state, to_timestamp(min(j.f) / 1000.0), to_timestamp(max(j.f) / 1000.0),
       array_agg(j.n::text ORDER BY j.f, j.n), int8range(min(j.n), max(j.n), '[]'),
       jsonb_agg(jsonb_build_object('campaignId', 'campaign-' || (j.n % 10000), 'channel', CASE WHEN j.n % 2 = 0 THEN 'sms' ELSE 'email' END) ORDER BY j.f, j.n),
       jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
         'n', j.queue, 'a', CASE WHEN j.failed THEN 3 ELSE 1 END, 'e', j.f - 2000, 'st', j.f - 1000, 'f', j.f,
         'r', CASE WHEN NOT j.failed THEN jsonb_build_object('sent', j.n % 100) END,
         'ec', CASE WHEN j.failed THEN 'Error' END, 'em', j.em, 'fp', j.fp)) ORDER BY j.f, j.n),
       j.fp,
       string_agg(j.em, E'\n' ORDER BY j.f, j.n)
  FROM (
    SELECT n, q.queue, n % 20 = 0 AS failed, CASE WHEN n % 20 = 0 THEN 'failed' ELSE 'completed' END AS state,
           n / (7 * ${JOBS_PER_BATCH}) AS chunk,
           floor(extract(epoch FROM $2::timestamptz) * 1000)::bigint
             - (n / (7 * ${JOBS_PER_BATCH})) * (7 * ${JOBS_PER_BATCH}) * (${DAYS}::bigint * 86400000 / $1::bigint) - n % (7 * ${JOBS_PER_BATCH}) AS f,
           CASE WHEN n % 20 = 0 THEN 'provider error ' || ((n / 20) % 20) || ': request ' || md5(n::text) || ' refused' END AS em,
           CASE WHEN n % 20 = 0 THEN lpad(to_hex((n / 20) % 20), 12, '0') END AS fp
      FROM generate_series(1, $1::bigint) AS n,
           LATERAL (SELECT (ARRAY['bulk-messaging','invoice-totals','partition-maintenance','archiving','db-maintenance','cache-prefetch','transaction-retry'])[1 + n % 7] AS queue) AS q
  ) AS j
 GROUP BY j.chunk, j.queue, j.state, j.fp`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function searchRows(): Promise<BenchRow[]> {
  const databaseUrl = await freshBenchDatabase("history-search");
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  try {
    const client = await pool.connect();
    const end = addPeriods(periodStart(new Date(), "day"), 1, "day");
    try {
      for (let offset = DAYS; offset >= 0; offset--) await createPartition(client, "dbjobs.job_history", addPeriods(end, -offset - 1, "day"));
      const started = performance.now();
      // In chunks of whole batches, so each statement's memory and WAL stay bounded.
      const chunk = Math.ceil(1_000_000 / (7 * JOBS_PER_BATCH)) * 7 * JOBS_PER_BATCH;
      for (let done = 0; done < HISTORY_ROWS; done += chunk) {
        const rows = Math.min(chunk, HISTORY_ROWS - done);
        await client.query(generateSql.replace("generate_series(1, $1::bigint)", `generate_series(${done + 1}, ${done + rows})`), [HISTORY_ROWS, end]);
        process.stderr.write(`bench: history-search generated ${done + rows}/${HISTORY_ROWS} rows\n`);
      }
      await client.query(`VACUUM ANALYZE "dbjobs"."job_history"`);
      process.stderr.write(`bench: history-search data ready in ${Math.round((performance.now() - started) / 1000)} s\n`);
    } finally {
      client.release();
    }

    const pick = (i: number) => (i * 7919) % 10000;
    const kinds: Record<string, (i: number) => Parameters<typeof parseHistoryQuery>[0]> = {
      "payload field": (i) => ({ fields: [`campaignId=campaign-${pick(i)}`] }),
      fingerprint: (i) => ({ fingerprint: (i % 20).toString(16).padStart(12, "0") }),
      "queue + state + since": (i) => ({ queue: "invoice-totals", state: "failed", since: `${1 + (i % 20)}d` }),
      "error text": (i) => ({ error: `provider error ${i % 20}:` }),
      "job id": (i) => ({ id: String(1 + ((i * 104_729) % HISTORY_ROWS)) }),
      "payload + state": (i) => ({ fields: [`campaignId=campaign-${pick(i)}`], state: "failed" }),
    };
    const timings: Record<string, number[]> = { "next page": [] };
    for (const [kind, make] of Object.entries(kinds)) {
      timings[kind] = [];
      for (let i = 0; i < QUERIES; i++) {
        const query = parseHistoryQuery(make(i));
        const t0 = performance.now();
        const page = await searchHistory(pool, query);
        timings[kind].push(performance.now() - t0);
        // The next page, by cursor, counts as a search of its own kind.
        if (page.nextCursor) {
          const t1 = performance.now();
          await searchHistory(pool, { ...query, cursor: parseHistoryQuery({ cursor: page.nextCursor }).cursor });
          timings["next page"]?.push(performance.now() - t1);
        }
      }
    }
    const all = Object.values(timings)
      .flat()
      .sort((a, b) => a - b);
    const p99 = percentile(all, 99);
    const rowsLabel = HISTORY_ROWS.toLocaleString("en-US");
    return [
      {
        name: `job history search p99 over ${rowsLabel} rows (${all.length} searches of ${Object.keys(timings).length} kinds, 50 rows a page)`,
        value: p99,
        unit: "ms",
        goal: HISTORY_ROWS >= 10_000_000 ? "< 100 (10M rows)" : `< 100 (goal is for 10M rows; this run has ${rowsLabel}: BENCH_HISTORY_ROWS)`,
        met: p99 < 100,
      },
      ...Object.entries(timings).map(([kind, values]) => {
        const sorted = [...values].sort((a, b) => a - b);
        return {
          name: `  search by ${kind}: p99 (median ${median(sorted).toFixed(1)} ms, ${sorted.length} searches; informational)`,
          value: percentile(sorted, 99),
          unit: "ms",
        };
      }),
    ];
  } finally {
    await pool.end();
    await benchRun.dropDatabase(databaseUrl);
  }
}

export const historyBench: BenchSection = {
  name: "history",
  async run(): Promise<BenchRow[]> {
    // BENCH_HISTORY_ROWS=0 measures the throughput only.
    return [...(await throughputRows()), ...(HISTORY_ROWS > 0 ? await searchRows() : [])];
  },
};
