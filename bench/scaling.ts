import { availableParallelism } from "node:os";
import { startRedisCluster } from "../test/support/redis-cluster.js";
import { benchRun } from "./bench-run.js";
import { type BenchRow, type BenchSection, pairedRatio } from "./bench-section.js";
import { CONCURRENCY } from "./noop-worker.js";
import { type PairedResult, pairedRounds } from "./paired-rounds.js";
import { bulkRun, noopRun, type RedisPlace, type ScalingFigures } from "./scaling-runs.js";
import { freshBenchDatabase } from "./support.js";

/**
 * Issue 20, item 6: what more worker processes of one queue buy on this
 * machine. Three measures, each in paired rounds (bench/paired-rounds.ts):
 *   - no-op jobs through 1, 2 and 3 worker processes (the project's worker
 *     runtime, concurrency 8 each) on the bench's Redis;
 *   - bulk messaging with 1, 2 and 3 `dbjobs worker bulk-messaging` processes,
 *     three campaigns enqueued at once;
 *   - the no-op workload through one worker process on a three-master Redis
 *     Cluster against the single Redis.
 * Each round runs every side back to back, the order rotating, and the ratios
 * (k processes ÷ 1, cluster ÷ single) are taken within the round; one
 * warm-up round of each runs first and is discarded. The CPU
 * figures are the worker processes' own (from /proc), summed over them.
 */
function positiveInteger(name: string, fallback: number): number {
  const text = process.env[name];
  const value = text === undefined || text === "" ? fallback : Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number ≥ 1, got "${text}"; set it so or unset it (default ${fallback})`);
  return value;
}

const sizes = () => ({
  jobs: positiveInteger("BENCH_SCALING_JOBS", 10_000),
  recipients: positiveInteger("BENCH_SCALING_RECIPIENTS", 10_000),
  rounds: positiveInteger("BENCH_SCALING_ROUNDS", 3),
});
const campaigns = 3;
const show = (figures: ScalingFigures) => `${Math.round(figures.rate)}/s, ${figures.cpuUs.toFixed(1)} µs cpu each`;

type Paired = PairedResult<ScalingFigures, ScalingFigures>;

/** How a 1 / 2 / 3 processes comparison names its figures, e.g. "no-op jobs", "jobs/s", "job". */
interface Wording {
  what: string;
  rateUnit: string;
  per: string;
}

/** The rows of a 1 / 2 / 3 processes comparison: rate ratios, then CPU per job or message. */
function processRows(paired: Paired, { what, rateUnit, per }: Wording, label: string): BenchRow[] {
  const rounds = paired.rounds.length;
  const three = (round: Paired["rounds"][number]) => round.others["3 processes"] as ScalingFigures;
  const sides = [
    { k: 2, figures: (round: Paired["rounds"][number]) => round.subject },
    { k: 3, figures: three },
  ];
  const rates = sides.map(({ k, figures }) => ({
    name: `${what}, ${rateUnit} with ${k} worker processes vs 1 (${label}; ratio = ${k} processes / 1 per round)`,
    value: paired.spreadOf((round) => figures(round).rate).median,
    unit: rateUnit,
    baseline: paired.spreadOf((round) => round.baseline.rate).median,
    ...pairedRatio(
      paired.spreadOf((round) => figures(round).rate / round.baseline.rate),
      rounds,
    ),
  }));
  const oneCpu = paired.spreadOf((round) => round.baseline.cpuUs);
  const cpu = sides.map(({ k, figures }) => ({
    name: `${what}: worker CPU per ${per}, summed over ${k} processes vs 1 process (informational; ratio = 1 process / ${k} per round)`,
    value: paired.spreadOf((round) => figures(round).cpuUs).median,
    unit: "µs",
    baseline: oneCpu.median,
    ...pairedRatio(
      paired.spreadOf((round) => round.baseline.cpuUs / figures(round).cpuUs),
      rounds,
    ),
  }));
  return [
    ...rates,
    {
      name: `${what}: worker CPU per ${per}, 1 process (informational)`,
      value: oneCpu.median,
      unit: "µs",
      valueRange: { min: oneCpu.min, max: oneCpu.max, runs: rounds },
    },
    ...cpu,
  ];
}

async function noopRows(jobs: number, rounds: number, cores: number): Promise<BenchRow[]> {
  const databaseUrl = await freshBenchDatabase("scaling_noop");
  try {
    const single: RedisPlace = { kind: "single" };
    const paired = await pairedRounds({
      label: "scaling no-op",
      rounds,
      warmUpRounds: 1,
      baseline: () => noopRun(1, jobs, single, databaseUrl),
      subject: () => noopRun(2, jobs, single, databaseUrl),
      others: { "3 processes": () => noopRun(3, jobs, single, databaseUrl) },
      ratio: (one, more) => more.rate / one.rate,
      show,
    });
    return processRows(
      paired,
      { what: "no-op jobs", rateUnit: "jobs/s", per: "job" },
      `${jobs} jobs, concurrency ${CONCURRENCY} each, Redis, ${cores} cores, ${rounds} paired rounds`,
    );
  } finally {
    await benchRun.dropDatabase(databaseUrl);
  }
}

async function bulkRows(recipients: number, rounds: number, cores: number): Promise<BenchRow[]> {
  const paired = await pairedRounds({
    label: "scaling bulk-messaging",
    rounds,
    warmUpRounds: 1,
    baseline: () => bulkRun(1, campaigns, recipients),
    subject: () => bulkRun(2, campaigns, recipients),
    others: { "3 processes": () => bulkRun(3, campaigns, recipients) },
    ratio: (one, more) => more.rate / one.rate,
    show,
  });
  return processRows(
    paired,
    { what: "bulk messaging", rateUnit: "msg/s", per: "message" },
    `${campaigns} campaigns of ${recipients} at once, ${cores} cores, ${rounds} paired rounds`,
  );
}

async function clusterRows(jobs: number, rounds: number): Promise<BenchRow[]> {
  const cluster = await startRedisCluster({ onSpawn: (child) => benchRun.trackChild(child) });
  try {
    const databaseUrl = await freshBenchDatabase("scaling_cluster");
    try {
      const paired = await pairedRounds({
        label: "scaling cluster",
        rounds,
        warmUpRounds: 1,
        baseline: () => noopRun(1, jobs, { kind: "single" }, databaseUrl),
        subject: () => noopRun(1, jobs, { kind: "cluster", nodes: cluster.nodes }, databaseUrl),
        ratio: (single, clustered) => clustered.rate / single.rate,
        show,
      });
      const count = paired.rounds.length;
      const label = `${jobs} jobs, one worker process of concurrency ${CONCURRENCY}, ${count} paired rounds`;
      return [
        {
          name: `no-op jobs/s on a 3-master Redis Cluster vs one Redis (${label}; ratio = cluster / single per round)`,
          value: paired.spreadOf((round) => round.subject.rate).median,
          unit: "jobs/s",
          baseline: paired.spreadOf((round) => round.baseline.rate).median,
          ...pairedRatio(paired.ratio, count),
        },
        {
          name: "same rounds, worker CPU per no-op job on the cluster vs one Redis (informational; ratio = single / cluster per round)",
          value: paired.spreadOf((round) => round.subject.cpuUs).median,
          unit: "µs",
          baseline: paired.spreadOf((round) => round.baseline.cpuUs).median,
          ...pairedRatio(
            paired.spreadOf((round) => round.baseline.cpuUs / round.subject.cpuUs),
            count,
          ),
        },
      ];
    } finally {
      await benchRun.dropDatabase(databaseUrl);
    }
  } finally {
    await cluster.stop();
  }
}

export const scalingBench: BenchSection = {
  name: "scaling",
  async run(): Promise<BenchRow[]> {
    const { jobs, recipients, rounds } = sizes();
    const cores = availableParallelism();
    return [...(await noopRows(jobs, rounds, cores)), ...(await bulkRows(recipients, rounds, cores)), ...(await clusterRows(jobs, rounds))];
  },
};
