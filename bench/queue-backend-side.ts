import { migrateQueueDatabase } from "../src/lib/migrate.js";
import { benchRun } from "./bench-run.js";
import { freshBenchDatabase } from "./support.js";

/**
 * What the queue-backend bench asks of each queue library: the same no-op
 * job, the same concurrency and the same two ways of adding jobs (a bulk
 * fill before the worker starts, then one add at a time), whatever the
 * library. Each library's file (queue-backend-bullmq.ts,
 * queue-backend-rivals.ts) turns this into its own API at its best
 * documented settings.
 */

/** Jobs run at once by every side's worker. */
export const CONCURRENCY = 8;
/** Queue (task) name every side uses, in its own database, schema or prefix. */
export const QUEUE = "bench-noop";

/** A no-op job's data: its number, and when it was added (performance.now() of this process; 0 for the bulk fill). */
export interface NoopData {
  n: number;
  t: number;
}

/** One side's open queue and worker, on its own database copy or Redis prefix. */
export interface OpenSide {
  /** Adds `count` jobs in the library's bulk form (untimed). */
  fill(count: number): Promise<void>;
  /** Starts the worker: `onJob` is called as each job's handler begins. */
  startWorker(onJob: (data: NoopData) => void): Promise<void>;
  /** Adds one job, as a producer adds one at a time. */
  add(data: NoopData): Promise<void>;
  /** Stops the worker (in-flight jobs finish) and closes every connection; removes the side's database or keys. */
  close(): Promise<void>;
}

export interface BackendSide {
  /** Short name, in progress lines and rows. */
  name: string;
  /** The settings it runs with, in words (for docs/benchmarks.md). */
  settings: string;
  /** Opens the side on a fresh copy of `source` (the prepared database, see prepareSource). */
  open(source: SourceDatabase): Promise<OpenSide>;
}

/** A database of this run holding every library's schema; each side works on a copy of it. */
export interface SourceDatabase {
  name: string;
  url: string;
}

/** A URL to database `name` on the bench's server. */
export function benchDatabaseUrl(name: string): string {
  const url = new URL(benchRun.adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * The source database: the application's migrations, BullMQ's PostgreSQL
 * schema and dbjobs' queue bookkeeping (as `dbjobs migrate` leaves them),
 * plus whatever `installRivals` adds (pg-boss, graphile-worker), so no side
 * pays for a migration inside a round.
 */
export async function prepareSource(installRivals: (url: string) => Promise<void>): Promise<SourceDatabase> {
  const url = await freshBenchDatabase("queues");
  await migrateQueueDatabase(url);
  await installRivals(url);
  return { name: decodeURIComponent(new URL(url).pathname.slice(1)), url };
}

/** A copy of the source for one side of one round; dropped by `drop` (and by the run's clean-up whatever happens). */
export async function copyOfSource(source: SourceDatabase, label: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = await benchRun.copyDatabase(source.name, label);
  return { url: benchDatabaseUrl(name), drop: () => benchRun.dropDatabase(name) };
}

/** The value below which `fraction` of `values` lie (nearest rank). */
export function percentile(values: number[], fraction: number): number {
  if (values.length === 0) throw new Error("percentile of no values");
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))] as number;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Rejects after `ms` with a message naming what did not happen, unless `work` settles first. */
export async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
