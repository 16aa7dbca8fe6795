/** Bytes as PostgreSQL's pg_size_pretty prints them (1024-based, bytes/kB/MB/GB/TB). */
export function formatBytes(bytes: number): string {
  const units = ["bytes", "kB", "MB", "GB", "TB", "PB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 10 * 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Math.round(value)} ${units[unit]}`;
}

/** A 0..1 ratio as a percentage with two decimals, or "n/a" when nothing was read yet. */
export function formatPercent(ratio: number | null): string {
  return ratio === null ? "n/a" : `${(ratio * 100).toFixed(2)}%`;
}
