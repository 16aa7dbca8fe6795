import { benchRun } from "./bench-run.js";
import { type BenchRow, type BenchSection, pairedRatio } from "./bench-section.js";
import { type PairedRound, pairedRounds, spread } from "./paired-rounds.js";
import { dbjobsPostgres, dbjobsRedis, rawBullmqPostgres } from "./queue-backend-bullmq.js";
import { graphileWorker, installRivals, pgBoss } from "./queue-backend-rivals.js";
import { type BackendSide, CONCURRENCY, type NoopData, percentile, prepareSource, type SourceDatabase, sleep, within } from "./queue-backend-side.js";
import { collectGarbage } from "./support.js";

/**
 * No-op jobs on every queue backend dbjobs could stand on, in one run, in
 * paired rounds: raw BullMQ on PostgreSQL (the baseline), dbjobs on
 * PostgreSQL (the subject), pg-boss, graphile-worker and dbjobs on Redis,
 * each round running all five back to back in a rotating order.
 *
 * Each side of each round works on its own copy of a source database that
 * holds every library's schema (Redis: its own key prefix), and does two
 * things with one worker of concurrency 8:
 *   1. throughput: JOBS jobs added in bulk before the worker starts, timed
 *      from the first job's start to the JOBS-th job's start (every side
 *      counts in its own handler, so no library's completion event is
 *      compared with another's), with this process's CPU over that window;
 *   2. enqueue→start latency: with the queue drained, LATENCY_JOBS single
 *      adds paced at LATENCY_RATE per second, each timed from just before
 *      the add call to its handler's start (same process, same clock).
 * Ratios are taken per round (jobs/s of a side ÷ jobs/s of raw BullMQ in the
 * same round), then their min / median / max; see paired-rounds.ts.
 */
const JOBS = Number(process.env.BENCH_BACKENDS_JOBS ?? 2000);
const ROUNDS = Number(process.env.BENCH_BACKENDS_ROUNDS ?? 4);
const WARM_UP_ROUNDS = Number(process.env.BENCH_BACKENDS_WARM_UP ?? 1);
const LATENCY_JOBS = Number(process.env.BENCH_BACKENDS_LATENCY_JOBS ?? 100);
/**
 * Well below every side's throughput on a loaded two-core machine (raw BullMQ
 * on PostgreSQL managed 145 jobs/s in a pilot under load 15), so the figure
 * is the wake-up path, not a queue building up.
 */
const LATENCY_RATE = 25;
/** Untimed pause after the throughput window, for the last completions to land before the latency phase. */
const SETTLE_MS = 300;

export interface SideFigures {
  /** Jobs per second over the throughput window. */
  rate: number;
  /** This process's CPU per job over that window, µs. */
  cpuPerJobUs: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

/** Resolves with the window's length and CPU once `count` bulk-filled jobs have started. */
function throughputProbe(count: number) {
  let seen = 0;
  let start = 0;
  let cpuBefore: NodeJS.CpuUsage | undefined;
  let resolve: (figures: { ms: number; cpuUs: number }) => void = () => undefined;
  const done = new Promise<{ ms: number; cpuUs: number }>((settle) => {
    resolve = settle;
  });
  return {
    done,
    hit() {
      seen += 1;
      if (seen === 1) {
        cpuBefore = process.cpuUsage();
        start = performance.now();
      }
      if (seen === count) {
        const ms = performance.now() - start;
        const cpu = process.cpuUsage(cpuBefore);
        resolve({ ms, cpuUs: cpu.user + cpu.system });
      }
    },
  };
}

/** Collects enqueue→start delays of `count` paced jobs. */
function latencyProbe(count: number) {
  const delays: number[] = [];
  let resolve: (delays: number[]) => void = () => undefined;
  const done = new Promise<number[]>((settle) => {
    resolve = settle;
  });
  return {
    done,
    hit(data: NoopData) {
      delays.push(performance.now() - data.t);
      if (delays.length === count) resolve(delays);
    },
  };
}

/** One side's share of one round: open it on a fresh copy, measure both phases, close and drop it. */
export async function measureSide(side: BackendSide, source: SourceDatabase): Promise<SideFigures> {
  const open = await side.open(source);
  try {
    await open.fill(JOBS);
    collectGarbage();
    const throughput = throughputProbe(JOBS);
    let latency: ReturnType<typeof latencyProbe> | undefined;
    await open.startWorker((data) => (data.t === 0 ? throughput.hit() : latency?.hit(data)));
    const window = await within(120_000, `${side.name}: ${JOBS} jobs started`, throughput.done);
    await sleep(SETTLE_MS);

    latency = latencyProbe(LATENCY_JOBS);
    const adds: Promise<void>[] = [];
    const first = performance.now();
    for (let n = 1; n <= LATENCY_JOBS; n++) {
      const wait = first + ((n - 1) * 1000) / LATENCY_RATE - performance.now();
      if (wait > 0) await sleep(wait);
      adds.push(open.add({ n, t: performance.now() }));
    }
    await Promise.all(adds);
    const delays = await within(30_000, `${side.name}: ${LATENCY_JOBS} paced jobs started`, latency.done);
    return {
      rate: JOBS / (window.ms / 1000),
      cpuPerJobUs: window.cpuUs / JOBS,
      latencyP50Ms: percentile(delays, 0.5),
      latencyP99Ms: percentile(delays, 0.99),
    };
  } finally {
    await open.close();
  }
}

type Round = PairedRound<SideFigures, SideFigures>;
const others = { pgBoss, graphileWorker, dbjobsRedis } as const;
type OtherName = keyof typeof others;
const other = (round: Round, name: OtherName) => round.others[name] as SideFigures;
const betterRival = (round: Round) => Math.max(other(round, "pgBoss").rate, other(round, "graphileWorker").rate);

export const queueBackendsBench: BenchSection = {
  name: "queue-backends",
  async run(): Promise<BenchRow[]> {
    const source = await prepareSource(installRivals);
    try {
      const paired = await pairedRounds({
        label: "queue-backends",
        rounds: ROUNDS,
        warmUpRounds: WARM_UP_ROUNDS,
        baseline: () => measureSide(rawBullmqPostgres, source),
        subject: () => measureSide(dbjobsPostgres, source),
        others: Object.fromEntries(Object.entries(others).map(([name, side]) => [name, () => measureSide(side, source)])),
        ratio: (raw, dbjobs) => dbjobs.rate / raw.rate,
        show: (figures) =>
          `${Math.round(figures.rate)} jobs/s, ${figures.cpuPerJobUs.toFixed(0)} µs cpu/job, p50 ${figures.latencyP50Ms.toFixed(1)} ms, p99 ${figures.latencyP99Ms.toFixed(1)} ms`,
      });
      return rowsOf(paired.rounds);
    } finally {
      await benchRun.dropDatabase(source.name);
    }
  },
};

function rowsOf(rounds: Round[]): BenchRow[] {
  const count = rounds.length;
  const setting = `${JOBS} no-op jobs, concurrency ${CONCURRENCY}, ${count} paired rounds`;
  const sides: [string, (round: Round) => SideFigures][] = [
    ["dbjobs on PostgreSQL", (round) => round.subject],
    ["raw BullMQ on PostgreSQL", (round) => round.baseline],
    ["pg-boss 10", (round) => other(round, "pgBoss")],
    ["graphile-worker 0.17", (round) => other(round, "graphileWorker")],
    ["dbjobs on Redis", (round) => other(round, "dbjobsRedis")],
  ];
  const of = (figure: (round: Round) => number) => spread(rounds.map(figure));
  const vsRaw = of((round) => round.subject.rate / round.baseline.rate);
  const vsRival = of((round) => round.subject.rate / betterRival(round));
  const rows: BenchRow[] = [
    {
      name: `no-op jobs/s, dbjobs on PostgreSQL vs raw BullMQ on PostgreSQL (${setting}; ratio = dbjobs / raw per round)`,
      value: of((round) => round.subject.rate).median,
      unit: "jobs/s",
      baseline: of((round) => round.baseline.rate).median,
      ...pairedRatio(vsRaw, count),
      goal: ">= 0.90",
      met: vsRaw.median >= 0.9,
    },
    {
      name: `no-op jobs/s, dbjobs on PostgreSQL vs the better of pg-boss and graphile-worker in each round (${setting}; ratio = dbjobs / better rival per round)`,
      value: of((round) => round.subject.rate).median,
      unit: "jobs/s",
      baseline: of(betterRival).median,
      ...pairedRatio(vsRival, count),
      goal: ">= 1.00",
      met: vsRival.median >= 1,
    },
  ];
  for (const [name, figures] of sides.slice(2)) {
    rows.push({
      name: `no-op jobs/s, ${name} vs raw BullMQ on PostgreSQL (informational; ratio = ${name} / raw per round)`,
      value: of((round) => figures(round).rate).median,
      unit: "jobs/s",
      baseline: of((round) => round.baseline.rate).median,
      ...pairedRatio(
        of((round) => figures(round).rate / round.baseline.rate),
        count,
      ),
    });
  }
  for (const [name, figures] of sides) {
    const cpu = of((round) => figures(round).cpuPerJobUs);
    rows.push({
      name: `CPU of the bench process per no-op job, ${name} (worker in this process; database or Redis work not counted)`,
      value: cpu.median,
      unit: "µs/job",
      valueRange: { min: cpu.min, max: cpu.max, runs: count },
    });
  }
  for (const [name, figures] of sides) {
    for (const [label, pick] of [
      ["p50", (side: SideFigures) => side.latencyP50Ms],
      ["p99", (side: SideFigures) => side.latencyP99Ms],
    ] as const) {
      const latency = of((round) => pick(figures(round)));
      rows.push({
        name: `enqueue→start latency ${label}, ${name} (${LATENCY_JOBS} single adds at ${LATENCY_RATE}/s to an idle worker, per round; median of rounds)`,
        value: latency.median,
        unit: "ms",
        valueRange: { min: latency.min, max: latency.max, runs: count },
      });
    }
  }
  return rows;
}
