import { readdirSync, readFileSync } from "node:fs";
import type pg from "pg";

/**
 * CPU use on this machine, from /proc (Linux): the whole machine's busy and
 * total time, and the CPU time of each process named `postgres*`. Taken
 * before and after a measured run, it says whether the run was bound by CPU
 * and how much of it PostgreSQL used. Null where /proc is missing.
 */
export interface HostCpu {
  busyMs: number;
  totalMs: number;
  /** CPU time so far of each postgres process, by pid. */
  postgresMs: Map<number, number>;
}

// USER_HZ, the unit of /proc CPU times: 100 on Linux builds for every common architecture.
const clockTicksPerSecond = 100;
const toMs = (ticks: number) => (ticks * 1000) / clockTicksPerSecond;

/** utime + stime of a process, in ticks; throws if it is gone. */
function processTicks(pid: number | string): number {
  // Fields after the command name: utime and stime are the 12th and 13th.
  const after = (readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1] ?? "").split(" ");
  return Number(after[11]) + Number(after[12]);
}

export function hostCpu(): HostCpu | null {
  try {
    const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
    const totalTicks = fields.reduce((sum, value) => sum + value, 0);
    const idleTicks = (fields[3] ?? 0) + (fields[4] ?? 0);
    const postgresMs = new Map<number, number>();
    for (const pid of readdirSync("/proc").filter((entry) => /^\d+$/.test(entry))) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("postgres")) postgresMs.set(Number(pid), toMs(processTicks(pid)));
      } catch {
        // The process ended between the listing and the read.
      }
    }
    return { busyMs: toMs(totalTicks - idleTicks), totalMs: toMs(totalTicks), postgresMs };
  } catch {
    return null;
  }
}

/**
 * What happened between two snapshots: the machine's busy share, and the CPU
 * time PostgreSQL spent, summed per process (one started in between counts
 * from zero; one that ended in between is lost, never subtracted). With
 * `pids`, only those processes count (see `postgresPidsOf`).
 */
export function cpuBetween(before: HostCpu | null, after: HostCpu | null, pids?: Set<number>): { busyShare: number; postgresMs: number } | null {
  if (!before || !after || after.totalMs <= before.totalMs) return null;
  let postgresMs = 0;
  for (const [pid, ms] of after.postgresMs) {
    if (!pids || pids.has(pid)) postgresMs += ms - (before.postgresMs.get(pid) ?? 0);
  }
  return { busyShare: (after.busyMs - before.busyMs) / (after.totalMs - before.totalMs), postgresMs };
}

/**
 * The PostgreSQL processes that work for `client`'s database: its backends
 * (and their parallel workers) and the server's shared background processes
 * (WAL writer, checkpointer, background writer), but not the backends of
 * other databases, which on a shared server belong to other people's work.
 */
export async function postgresPidsOf(client: Queryable): Promise<Set<number>> {
  const { rows } = await client.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR (datname IS NULL AND backend_type <> 'client backend')`,
  );
  return new Set(rows.map((row) => row.pid));
}

/** A pg Pool or Client. */
export interface Queryable {
  query<Row extends pg.QueryResultRow>(text: string): Promise<pg.QueryResult<Row>>;
}

/**
 * Runs `work` and returns, beside its result, the CPU time this process and
 * the PostgreSQL processes of `client`'s database (see postgresPidsOf) spent
 * meanwhile, in ms; postgresMs is NaN where /proc cannot tell. The database's
 * processes are read while `client` is still connected: the CPU of a
 * connection closed before the end of `work` is not counted.
 */
export async function cpuOf<T>(client: Queryable, work: () => Promise<T>): Promise<{ result: T; processMs: number; postgresMs: number }> {
  const before = hostCpu();
  const cpu = process.cpuUsage();
  const result = await work();
  const used = process.cpuUsage(cpu);
  const after = hostCpu();
  const postgres = cpuBetween(before, after, await postgresPidsOf(client));
  return { result, processMs: (used.user + used.system) / 1000, postgresMs: postgres?.postgresMs ?? Number.NaN };
}

/** CPU time (user + system) of one process so far, or NaN where /proc is missing. */
export function processCpuMs(pid: number): number {
  try {
    return toMs(processTicks(pid));
  } catch {
    return Number.NaN;
  }
}
