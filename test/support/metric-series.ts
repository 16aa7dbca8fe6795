import type { MetricsStore } from "../../src/lib/metrics.js";

/** The flushed series of every process, keyed as in the exposition text, `name{label="value",...}` with labels sorted. */
export async function readSeries(store: MetricsStore): Promise<Map<string, number>> {
  const { samples } = await store.read();
  const series = new Map<string, number>();
  for (const { sample, labels, value } of samples) {
    const entries = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
    const key = entries.length === 0 ? sample : `${sample}{${entries.map(([name, label]) => `${name}="${label}"`).join(",")}}`;
    series.set(key, (series.get(key) ?? 0) + value);
  }
  return series;
}
