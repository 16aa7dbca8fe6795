import type pg from "pg";
import type { MetricsStore, StoredSample } from "./metrics.js";

/**
 * The metrics store on PostgreSQL (QUEUE_BACKEND=postgres): table
 * dbjobs.metric_samples, one row per series, incremented by an upsert.
 */

// Takes $1 text[] sample names, $2 jsonb[] label sets, $3 text[] families, $4 float8[] increments.
// Adds each increment to its series, creating it at the increment.
const addSql = `
INSERT INTO "dbjobs"."metric_samples" AS m ("sample", "labels", "metric", "value")
SELECT s, l, f, v FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::float8[]) AS t(s, l, f, v)
ON CONFLICT ("sample", "labels") DO UPDATE SET "value" = m."value" + excluded."value"`;

export function postgresMetricsStore(pool: () => Promise<pg.Pool>): MetricsStore {
  return {
    async add(samples) {
      if (samples.length === 0) return;
      // One row per series in a statement: ON CONFLICT cannot touch a row twice.
      const merged = new Map<string, StoredSample>();
      for (const entry of samples) {
        const key = `${entry.sample}\u0000${JSON.stringify(Object.entries(entry.labels).sort(([a], [b]) => a.localeCompare(b)))}`;
        const existing = merged.get(key);
        if (existing) existing.value += entry.value;
        else merged.set(key, { ...entry });
      }
      const rows = [...merged.values()];
      await (await pool()).query(addSql, [
        rows.map((row) => row.sample),
        rows.map((row) => JSON.stringify(row.labels)),
        rows.map((row) => row.metric),
        rows.map((row) => row.value),
      ]);
    },
    async read() {
      const { rows } = await (await pool()).query<{ metric: string; sample: string; labels: Record<string, string>; value: number }>(
        `SELECT "metric", "sample", "labels", "value" FROM "dbjobs"."metric_samples"`,
      );
      return { samples: rows.map((row) => ({ ...row, value: Number(row.value) })), unreadable: 0 };
    },
  };
}
