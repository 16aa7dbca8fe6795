import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../src/lib/db.js";
import { benchRun } from "./bench-run.js";

/** Redis for every section: BENCH_REDIS_URL, else REDIS_URL, else local. */
export const benchRedisUrl = benchRun.redisUrl;

/** A new migrated database of this run (see bench-run.ts); returns its URL. */
export function freshBenchDatabase(label: string): Promise<string> {
  return benchRun.freshDatabase(label);
}

/** A BullMQ/cache key prefix of this run, used by nothing else. */
export function benchPrefix(): string {
  return benchRun.queuePrefix();
}

let gc: (() => void) | undefined;

/**
 * A full garbage collection, now: called between a side's set-up and its
 * measured window, so that the set-up's garbage (20,000 jobs added, a
 * previous side's worker closed) is not collected, and counted, inside the
 * window. The bench runs without --expose-gc, so the flag is set here.
 */
export function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  }
  gc();
}

/** Runs `work` and returns elapsed milliseconds. */
export async function timeMs(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

/**
 * A Prisma client as an application builds one (the driver adapter, no query
 * logging), for the seed loops the jobs are compared against. The project's own
 * client (createDb) listens to every query for its slow-query log, which cost
 * seed 004's messaging loop 4% on average side by side (five warm pairs of 200
 * recipients, −1% to +8%): a handicap the baseline should not carry. Close it
 * with `$disconnect()`.
 */
export function applicationPrisma(url: string): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: 4 }) });
}
