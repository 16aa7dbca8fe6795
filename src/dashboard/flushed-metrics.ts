import { AggregatorRegistry, type Registry } from "prom-client";
import { type MetricDeclaration, metricDeclarations, type StoredSample } from "../lib/metrics.js";

/**
 * The series every process flushed to the metrics store, as a prom-client
 * registry. Each declared metric becomes one family in prom-client's own JSON
 * form (`MetricObjectWithValues`), which `AggregatorRegistry.aggregate`
 * turns into a registry, as in prom-client's cluster mode; prom-client writes
 * the exposition text. Per-queue series start at zero for every known queue.
 * Samples of undeclared metrics (from a newer or older version) are skipped.
 * (The JSON types are written out here: prom-client's typings declare `type`
 * as a numeric enum while it emits and reads strings.)
 */
interface Value {
  metricName: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  help: string;
  type: MetricDeclaration["type"];
  aggregator: "sum";
  values: Value[];
}

const sortedLabels = (labels: Record<string, string>) => Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
const labelsKey = (labels: Record<string, string>) => JSON.stringify(sortedLabels(labels));

function zeroSeries(declaration: MetricDeclaration, queues: readonly string[]): Value[] {
  if (!declaration.perQueue) return declaration.labels.length === 0 ? [{ metricName: declaration.name, labels: {}, value: 0 }] : [];
  return queues.flatMap((queue) => {
    const labels = { queue };
    if (declaration.type === "counter") return [{ metricName: declaration.name, labels, value: 0 }];
    return [
      ...[...declaration.buckets.map(String), "+Inf"].map((le) => ({
        metricName: `${declaration.name}_bucket`,
        labels: sortedLabels({ ...labels, le }),
        value: 0,
      })),
      { metricName: `${declaration.name}_sum`, labels, value: 0 },
      { metricName: `${declaration.name}_count`, labels, value: 0 },
    ];
  });
}

/** A histogram's samples grouped by label set, each as buckets in `le` order, then _sum, then _count. */
function exposition(declaration: MetricDeclaration, values: Value[]): Value[] {
  if (declaration.type !== "histogram") return values.sort((a, b) => labelsKey(a.labels).localeCompare(labelsKey(b.labels)));
  const suffixRank = (value: Value) => ["_bucket", "_sum", "_count"].findIndex((suffix) => value.metricName === declaration.name + suffix);
  const le = (value: Value) => (value.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(value.labels.le ?? 0));
  const withoutLe = (value: Value) => labelsKey(Object.fromEntries(Object.entries(value.labels).filter(([key]) => key !== "le")));
  return values.sort((a, b) => withoutLe(a).localeCompare(withoutLe(b)) || suffixRank(a) - suffixRank(b) || le(a) - le(b));
}

export function flushedMetricsRegistry(samples: readonly StoredSample[], queues: readonly string[]): Registry {
  // aggregate() sums the values that share a sample name and label set: the zero series and what was flushed.
  const families: Family[] = Object.values(metricDeclarations).map((declaration) => ({
    name: declaration.name,
    help: declaration.help,
    type: declaration.type,
    aggregator: "sum",
    values: exposition(declaration, [
      ...zeroSeries(declaration, queues),
      ...samples
        .filter((sample) => sample.metric === declaration.name)
        .map((sample) => ({ metricName: sample.sample, labels: sample.labels, value: sample.value })),
    ]),
  }));
  return AggregatorRegistry.aggregate([families]);
}
