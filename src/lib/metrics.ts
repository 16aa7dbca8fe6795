import type { Redis } from "ioredis";

/**
 * Cross-process metrics. Workers count in memory and flush the increments to
 * one Redis hash every few seconds; the dashboard reads that hash and exposes
 * it to Prometheus. Counters (and histograms built from counters) add up
 * correctly however many processes write them, which gauges would not.
 *
 * Series keys look like `name{label="value",...}`, the Prometheus text form.
 */
const pending = new Map<string, number>();

export const JOB_DURATION_BUCKETS_SECONDS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800];

export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const entries = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return name;
  const body = entries.map(([key, value]) => `${key}="${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`).join(",");
  return `${name}{${body}}`;
}

export function incrementCounter(name: string, labels: Record<string, string> = {}, by = 1): void {
  const key = seriesKey(name, labels);
  pending.set(key, (pending.get(key) ?? 0) + by);
}

export function recordSlowQuery(): void {
  incrementCounter("dbjobs_slow_queries_total");
}

export function metricsHashKey(prefix: string): string {
  return `${prefix}:dbjobs:metrics`;
}

/** Moves the pending increments to Redis. On failure they are put back for the next flush. */
export async function flushMetrics(redis: Redis, prefix: string): Promise<void> {
  if (pending.size === 0) return;
  const batch = [...pending.entries()];
  pending.clear();
  const pipeline = redis.pipeline();
  for (const [key, value] of batch) pipeline.hincrbyfloat(metricsHashKey(prefix), key, value);
  try {
    await pipeline.exec();
  } catch (err) {
    for (const [key, value] of batch) pending.set(key, (pending.get(key) ?? 0) + value);
    throw err;
  }
}

/** Every series written by any process, for exposition. */
export async function readMetrics(redis: Redis, prefix: string): Promise<Map<string, number>> {
  const raw = await redis.hgetall(metricsHashKey(prefix));
  return new Map(Object.entries(raw).map(([key, value]) => [key, Number(value)]));
}
