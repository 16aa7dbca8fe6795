/**
 * Monthly RANGE partitions on "createdAt", in UTC, named <parent>_YYYY_MM:
 * the month arithmetic and the names, shared by partition-maintenance,
 * archiving and `db report`.
 */

export interface MonthRange {
  /** First instant of the month, UTC. */
  start: Date;
  /** First instant of the next month, UTC (exclusive). */
  end: Date;
}

export function utcMonthStart(date: Date): Date {
  return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1));
}

export function addUtcMonths(monthStart: Date, months: number): Date {
  return new Date(Date.UTC(monthStart.getUTCFullYear(), monthStart.getUTCMonth() + months, 1));
}

export function monthRange(monthStart: Date): MonthRange {
  const start = utcMonthStart(monthStart);
  return { start, end: addUtcMonths(start, 1) };
}

/** "2026-05" for any instant in May 2026 (UTC). */
export function monthKey(date: Date): string {
  return `${date.getUTCFullYear()}-${String(date.getUTCMonth() + 1).padStart(2, "0")}`;
}

/** The first instant of a "YYYY-MM" month. */
export function monthFromKey(key: string): Date {
  const [year, month] = key.split("-").map(Number);
  return new Date(Date.UTC(year as number, (month as number) - 1, 1));
}

/** transactions_2026_05 */
export function monthPartitionName(parent: string, monthStart: Date): string {
  return `${parent}_${monthKey(monthStart).replace("-", "_")}`;
}

/** The CHECK constraint equal to a monthly partition's bound (see create-month-partition.ts for why it exists). */
export function boundCheckName(partition: string): string {
  return `${partition}_bound_check`;
}

/** A timestamp literal for DDL (bounds cannot be bind parameters). toISOString only emits [0-9TZ:.-]. */
export function timestampLiteral(date: Date): string {
  return `'${date.toISOString()}'`;
}

/** `FROM ('…') TO ('…')`: the bound of a monthly partition, for CREATE … PARTITION OF and ATTACH PARTITION. */
export function monthBoundSql(range: MonthRange): string {
  return `FROM (${timestampLiteral(range.start)}) TO (${timestampLiteral(range.end)})`;
}

/** The body of a monthly partition's bound CHECK constraint. */
export function monthCheckSql(range: MonthRange): string {
  return `"createdAt" >= ${timestampLiteral(range.start)} AND "createdAt" < ${timestampLiteral(range.end)}`;
}
