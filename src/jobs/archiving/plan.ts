import type pg from "pg";
import { listPartitions } from "../../partitions/catalog.js";
import { monthFromKey, monthRange } from "../../partitions/month-bounds.js";
import type { MonthCounts, MonthPlan } from "./contract.js";

/** now − years, in UTC (29 February becomes 1 March). */
export function archiveCutoff(now: Date, years: number): Date {
  return new Date(
    Date.UTC(
      now.getUTCFullYear() - years,
      now.getUTCMonth(),
      now.getUTCDate(),
      now.getUTCHours(),
      now.getUTCMinutes(),
      now.getUTCSeconds(),
      now.getUTCMilliseconds(),
    ),
  );
}

/**
 * Decides per month how its eligible rows move: the fast path when the month
 * has a partition lying wholly before the cutoff and holding only eligible
 * rows (and the row budget covers it whole), batches otherwise.
 */
export async function planMonths(client: pg.ClientBase, before: MonthCounts[], cutoff: Date, maxRows: number): Promise<MonthPlan[]> {
  const partitions = await listPartitions(client, "transactions");
  let budget = maxRows;
  return before.map((counts) => {
    const range = monthRange(monthFromKey(counts.month));
    const partition = partitions.find((candidate) => candidate.from?.getTime() === range.start.getTime() && candidate.to?.getTime() === range.end.getTime());
    let path: MonthPlan["path"] = "none";
    if (counts.eligible > 0 && budget > 0) {
      path = partition && range.end <= cutoff && counts.eligible === counts.live && counts.live <= budget ? "fast" : "batches";
      budget -= Math.min(budget, counts.eligible);
    }
    return { ...counts, path };
  });
}
