import { JOB_DURATION_BUCKETS_SECONDS, seriesKey } from "../lib/metrics.js";

/**
 * Prometheus text for the series workers flush to Redis (src/lib/metrics.ts).
 * Those are counters, and histograms built from counters, already keyed in
 * the text form `name{label="value"}`; prom-client cannot adopt precomputed
 * histogram buckets, so this writes the families itself: one `# HELP` and
 * `# TYPE` per family, its samples together, histogram buckets in `le` order
 * followed by `_sum` and `_count` (exposition format 0.0.4).
 */
const help: Record<string, string> = {
  dbjobs_jobs_completed_total: "Jobs completed, per queue.",
  dbjobs_jobs_failed_total: "Job attempts that failed, per queue (each retry counts).",
  dbjobs_jobs_stalled_total: "Jobs whose worker lost its lock (crash, blocked event loop) and that BullMQ put back, per queue.",
  dbjobs_job_duration_seconds: "Time from a job's start to its completion, per queue.",
  dbjobs_slow_queries_total: "Queries slower than SLOW_QUERY_MS, in every process.",
  dbjobs_cache_hits_total: "Cache reads answered from a cache tier.",
  dbjobs_cache_misses_total: "Cache reads that missed every tier.",
  dbjobs_cache_loads_total: "Cache misses that loaded the value from PostgreSQL.",
  dbjobs_transactions_failed_for_good_total: "Transactions marked FAILED after their last settlement attempt.",
};

/** Counters every queue has from the start, so `rate()` works before the first job. */
const perQueueCounters = ["dbjobs_jobs_completed_total", "dbjobs_jobs_failed_total", "dbjobs_jobs_stalled_total"];
const perQueueHistograms = ["dbjobs_job_duration_seconds"];
const globalCounters = ["dbjobs_slow_queries_total"];

const seriesPattern = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})?$/;
const labelPattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const histogramSuffixes = ["_bucket", "_sum", "_count"] as const;

interface Sample {
  name: string;
  labels: [string, string][];
  value: number;
}

function parseSeries(key: string, value: number): Sample | undefined {
  const match = seriesPattern.exec(key);
  if (!match?.[1] || !Number.isFinite(value)) return undefined;
  const labels = [...(match[2] ?? "").matchAll(labelPattern)].map((label) => [label[1] as string, label[2] as string] as [string, string]);
  return { name: match[1], labels, value };
}

function labelText(labels: [string, string][]): string {
  return labels.length === 0 ? "" : `{${labels.map(([key, value]) => `${key}="${value}"`).join(",")}}`;
}

function formatValue(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(15)));
}

function leOrder(le: string | undefined): number {
  if (le === undefined) return 0;
  return le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
}

function compareNumbers(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Adds zero series for the known per-queue counters and histograms that no worker has flushed yet. */
export function withZeroSeries(series: Map<string, number>, queues: readonly string[]): Map<string, number> {
  const filled = new Map(series);
  const ensure = (key: string) => {
    if (!filled.has(key)) filled.set(key, 0);
  };
  for (const queue of queues) {
    for (const name of perQueueCounters) ensure(seriesKey(name, { queue }));
    for (const name of perQueueHistograms) {
      for (const le of [...JOB_DURATION_BUCKETS_SECONDS.map(String), "+Inf"]) ensure(seriesKey(`${name}_bucket`, { queue, le }));
      ensure(seriesKey(`${name}_sum`, { queue }));
      ensure(seriesKey(`${name}_count`, { queue }));
    }
  }
  for (const name of globalCounters) ensure(name);
  return filled;
}

/**
 * Renders the flushed series as exposition text. Keys that are not valid
 * series, and families named in `reserved` (the dashboard's own gauges), are
 * skipped and returned in `skipped` so the caller can log them.
 */
export function renderFlushedMetrics(series: Map<string, number>, reserved: ReadonlySet<string> = new Set()): { text: string; skipped: string[] } {
  const samples: Sample[] = [];
  const skipped: string[] = [];
  for (const [key, value] of series) {
    const sample = parseSeries(key, value);
    if (sample) samples.push(sample);
    else skipped.push(key);
  }

  // A family is a histogram when some sample is named <family>_bucket with an `le` label.
  const histograms = new Set(
    samples
      .filter((sample) => sample.name.endsWith("_bucket") && sample.labels.some(([key]) => key === "le"))
      .map((sample) => sample.name.slice(0, -"_bucket".length)),
  );
  const familyOf = (name: string) => {
    for (const suffix of histogramSuffixes) {
      if (name.endsWith(suffix) && histograms.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
    }
    return name;
  };

  const families = new Map<string, Sample[]>();
  for (const sample of samples) {
    const family = familyOf(sample.name);
    if (reserved.has(family)) {
      skipped.push(sample.name);
      continue;
    }
    families.set(family, [...(families.get(family) ?? []), sample]);
  }

  const lines: string[] = [];
  for (const family of [...families.keys()].sort()) {
    const members = families.get(family) ?? [];
    const isHistogram = histograms.has(family);
    lines.push(`# HELP ${family} ${help[family] ?? "Counted by dbjobs processes and flushed to Redis."}`);
    lines.push(`# TYPE ${family} ${isHistogram ? "histogram" : "counter"}`);
    const rank = (sample: Sample) => {
      const withoutLe = labelText(sample.labels.filter(([key]) => key !== "le"));
      const suffixRank = isHistogram ? histogramSuffixes.findIndex((suffix) => sample.name === family + suffix) : 0;
      const le = sample.labels.find(([key]) => key === "le")?.[1];
      return { withoutLe, suffixRank, le: leOrder(le) };
    };
    members.sort((a, b) => {
      const ra = rank(a);
      const rb = rank(b);
      return ra.withoutLe.localeCompare(rb.withoutLe) || ra.suffixRank - rb.suffixRank || compareNumbers(ra.le, rb.le);
    });
    for (const sample of members) lines.push(`${sample.name}${labelText(sample.labels)} ${formatValue(sample.value)}`);
  }
  return { text: lines.length > 0 ? `${lines.join("\n")}\n` : "", skipped };
}
