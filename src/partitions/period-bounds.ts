import { addUtcMonths, boundCheckName, type MonthRange, monthBoundSql, timestampLiteral, utcMonthStart } from "./month-bounds.js";

/**
 * RANGE partitions of one UTC month or one UTC day: the arithmetic, names and
 * SQL fragments shared by every partitioned table we own (catalog.ts).
 * Monthly tables keep their `<parent>_YYYY_MM` names (month-bounds.ts); daily
 * ones are `<parent>_YYYY_MM_DD`.
 */
export type Granularity = "month" | "day";

/** [start, end) of one period, UTC. */
export type PeriodRange = MonthRange;

export { boundCheckName };

export function periodStart(date: Date, granularity: Granularity): Date {
  if (granularity === "month") return utcMonthStart(date);
  return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
}

export function addPeriods(start: Date, count: number, granularity: Granularity): Date {
  if (granularity === "month") return addUtcMonths(start, count);
  return new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate() + count));
}

export function periodRange(date: Date, granularity: Granularity): PeriodRange {
  const start = periodStart(date, granularity);
  return { start, end: addPeriods(start, 1, granularity) };
}

/** "2026-05" (month) or "2026-05-07" (day). */
export function periodKey(date: Date, granularity: Granularity): string {
  return date.toISOString().slice(0, granularity === "month" ? 7 : 10);
}

/** The first instant of a period key. */
export function periodFromKey(key: string): Date {
  const [year, month, day] = key.split("-").map(Number);
  return new Date(Date.UTC(year as number, (month as number) - 1, day ?? 1));
}

/** transactions_2026_05, job_history_2026_05_07 */
export function periodPartitionName(parent: string, start: Date, granularity: Granularity): string {
  return `${parent}_${periodKey(start, granularity).replaceAll("-", "_")}`;
}

/** `FROM ('…') TO ('…')`, for CREATE … PARTITION OF and ATTACH PARTITION. */
export const rangeBoundSql: (range: PeriodRange) => string = monthBoundSql;

/** The body of a partition's bound CHECK constraint on `column` (a quoted identifier from the catalog.ts whitelist). */
export function rangeCheckSql(column: string, range: PeriodRange): string {
  return `${column} >= ${timestampLiteral(range.start)} AND ${column} < ${timestampLiteral(range.end)}`;
}

/** The SQL of `date_trunc`'s field and `to_char`'s format for a granularity (constants, never input). */
export function periodSql(granularity: Granularity): { trunc: string; format: string } {
  return granularity === "month" ? { trunc: "'month'", format: "'YYYY-MM'" } : { trunc: "'day'", format: "'YYYY-MM-DD'" };
}
