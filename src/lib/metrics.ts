import type { RedisConnection } from "./redis.js";

/**
 * Every metric dbjobs exports, declared once: name, type, help and labels.
 * Processes count into typed writers (below); a flush moves the increments
 * to a shared store, where they add up across processes and restarts; the
 * dashboard renders the store with prom-client (src/dashboard/metrics.ts).
 *
 * Only counters and histograms built from counters are flushed: they sum
 * correctly over any number of processes, which gauges would not.
 */
export const JOB_DURATION_BUCKETS_SECONDS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800] as const;

interface Declaration<Labels extends string> {
  name: string;
  help: string;
  labels: readonly Labels[];
  /** Series created at zero for every queue, so rate() and alerts work before the first event. */
  perQueue?: boolean;
}
export interface CounterDeclaration<Labels extends string = string> extends Declaration<Labels> {
  type: "counter";
}
export interface HistogramDeclaration<Labels extends string = string> extends Declaration<Labels> {
  type: "histogram";
  buckets: readonly number[];
}
export type MetricDeclaration = CounterDeclaration | HistogramDeclaration;

const counter = <const L extends string>(name: string, help: string, labels: readonly L[], perQueue = false): CounterDeclaration<L> => ({
  type: "counter",
  name,
  help,
  labels,
  perQueue,
});

export const metricDeclarations = {
  jobsCompleted: counter("dbjobs_jobs_completed_total", "Jobs completed, per queue.", ["queue"], true),
  jobsFailed: counter("dbjobs_jobs_failed_total", "Job attempts that failed, per queue (each retry counts).", ["queue"], true),
  jobsStalled: counter(
    "dbjobs_jobs_stalled_total",
    "Jobs whose worker lost its lock (crash, blocked event loop) and that BullMQ put back, per queue.",
    ["queue"],
    true,
  ),
  jobDuration: {
    type: "histogram",
    name: "dbjobs_job_duration_seconds",
    help: "Time from a job's start to its completion, per queue.",
    labels: ["queue"],
    buckets: JOB_DURATION_BUCKETS_SECONDS,
    perQueue: true,
  } as HistogramDeclaration<"queue">,
  slowQueries: counter("dbjobs_slow_queries_total", "Queries slower than SLOW_QUERY_MS, in every process.", []),
  cacheHits: counter("dbjobs_cache_hits_total", "Cache reads answered from a cache tier.", ["tier", "kind"]),
  cacheMisses: counter("dbjobs_cache_misses_total", "Cache reads that missed every tier.", ["kind"]),
  cacheLoads: counter("dbjobs_cache_loads_total", "Cache misses that loaded the value from PostgreSQL.", ["kind"]),
  transactionsFailedForGood: counter("dbjobs_transactions_failed_for_good_total", "Transactions marked FAILED after their last settlement attempt.", [
    "reason",
  ]),
} as const;

/** One stored series: `sample` is the exposition name (a histogram's `_bucket`, `_sum` or `_count`), `metric` its family. */
export interface StoredSample {
  metric: string;
  sample: string;
  labels: Record<string, string>;
  value: number;
}

// ── Per-process accumulation ─────────────────────────────────────────────
// Increments wait here until the next flush. The map key only finds a
// series again in this process; it is never stored or parsed.
const pending = new Map<string, StoredSample>();

function add(metric: string, sample: string, labels: Record<string, string>, by: number): void {
  if (by === 0) return;
  const key = `${sample}\u0000${JSON.stringify(labels)}`;
  const entry = pending.get(key);
  if (entry) entry.value += by;
  else pending.set(key, { metric, sample, labels, value: by });
}

export class CounterWriter<Labels extends string> {
  constructor(readonly declaration: CounterDeclaration<Labels>) {}

  inc(labels: Record<Labels, string>, by = 1): void {
    add(this.declaration.name, this.declaration.name, labels, by);
  }
}

export class HistogramWriter<Labels extends string> {
  constructor(readonly declaration: HistogramDeclaration<Labels>) {}

  /**
   * Adds many observations at once: `bucketCounts[i]` observations at or under
   * `buckets[i]` (cumulative, as in the exposition), their sum and count.
   * Workers count per job in plain numbers and call this once per flush.
   */
  addCounts(labels: Record<Labels, string>, counts: { bucketCounts: readonly number[]; sum: number; count: number }): void {
    const { name, buckets } = this.declaration;
    for (const [index, le] of buckets.entries()) add(name, `${name}_bucket`, { ...labels, le: String(le) }, counts.bucketCounts[index] ?? 0);
    add(name, `${name}_bucket`, { ...labels, le: "+Inf" }, counts.count);
    add(name, `${name}_sum`, labels, counts.sum);
    add(name, `${name}_count`, labels, counts.count);
  }

  observe(labels: Record<Labels, string>, value: number): void {
    this.addCounts(labels, { bucketCounts: this.declaration.buckets.map((le) => (value <= le ? 1 : 0)), sum: value, count: 1 });
  }
}

const d = metricDeclarations;
/** The typed writers every process counts through. */
export const metrics = {
  jobsCompleted: new CounterWriter(d.jobsCompleted),
  jobsFailed: new CounterWriter(d.jobsFailed),
  jobsStalled: new CounterWriter(d.jobsStalled),
  jobDuration: new HistogramWriter(d.jobDuration),
  slowQueries: new CounterWriter(d.slowQueries),
  cacheHits: new CounterWriter(d.cacheHits),
  cacheMisses: new CounterWriter(d.cacheMisses),
  cacheLoads: new CounterWriter(d.cacheLoads),
  transactionsFailedForGood: new CounterWriter(d.transactionsFailedForGood),
};

// ── The shared store ─────────────────────────────────────────────────────
/** Where flushed increments add up across processes. */
export interface MetricsStore {
  add(samples: readonly StoredSample[]): Promise<void>;
  /** Every series any process flushed; an entry that cannot be read is skipped and counted in `unreadable`. */
  read(): Promise<{ samples: StoredSample[]; unreadable: number }>;
}

/** A Redis hash: one field per series (its sample name and labels as JSON), summed with HINCRBYFLOAT. */
export function redisMetricsStore(redis: RedisConnection, prefix: string): MetricsStore {
  const key = `${prefix}:dbjobs:metrics`;
  return {
    async add(samples) {
      const pipeline = redis.pipeline();
      for (const entry of samples) pipeline.hincrbyfloat(key, JSON.stringify([entry.metric, entry.sample, entry.labels]), entry.value);
      const results = await pipeline.exec();
      const failed = results?.find(([err]) => err);
      if (failed) throw failed[0];
    },
    async read() {
      const samples: StoredSample[] = [];
      let unreadable = 0;
      for (const [field, raw] of Object.entries(await redis.hgetall(key))) {
        const entry = parseField(field, Number(raw));
        if (entry) samples.push(entry);
        else unreadable++;
      }
      return { samples, unreadable };
    },
  };
}

function parseField(field: string, value: number): StoredSample | undefined {
  try {
    const [metric, sample, labels] = JSON.parse(field) as unknown[];
    if (typeof metric !== "string" || typeof sample !== "string" || !labels || typeof labels !== "object" || !Number.isFinite(value)) return undefined;
    if (!Object.values(labels).every((label) => typeof label === "string")) return undefined;
    return { metric, sample, labels: labels as Record<string, string>, value };
  } catch {
    return undefined;
  }
}

/** Moves the pending increments to the store. On failure they are put back for the next flush. */
export async function flushMetrics(store: MetricsStore): Promise<void> {
  if (pending.size === 0) return;
  const batch = [...pending.values()];
  pending.clear();
  try {
    await store.add(batch);
  } catch (err) {
    for (const entry of batch) add(entry.metric, entry.sample, entry.labels, entry.value);
    throw err;
  }
}
