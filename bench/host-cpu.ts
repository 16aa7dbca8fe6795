import { readdirSync, readFileSync } from "node:fs";

/**
 * CPU use on this machine, from /proc (Linux): the whole machine's busy and
 * total time, and the CPU time of the processes named `postgres*`. Taken
 * before and after a measured run, it says whether the run was bound by CPU
 * and how much of it PostgreSQL used. Null where /proc is missing.
 */
export interface HostCpu {
  busyMs: number;
  totalMs: number;
  postgresMs: number;
}

// USER_HZ, the unit of /proc CPU times: 100 on Linux builds for every common architecture.
const clockTicksPerSecond = 100;

export function hostCpu(): HostCpu | null {
  try {
    const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
    const totalTicks = fields.reduce((sum, value) => sum + value, 0);
    const idleTicks = (fields[3] ?? 0) + (fields[4] ?? 0);
    let postgresTicks = 0;
    for (const pid of readdirSync("/proc").filter((entry) => /^\d+$/.test(entry))) {
      try {
        if (!readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("postgres")) continue;
        // Fields after the command name: utime and stime are the 12th and 13th.
        const after = (readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1] ?? "").split(" ");
        postgresTicks += Number(after[11]) + Number(after[12]);
      } catch {
        // The process ended between the listing and the read.
      }
    }
    const toMs = (ticks: number) => (ticks * 1000) / clockTicksPerSecond;
    return { busyMs: toMs(totalTicks - idleTicks), totalMs: toMs(totalTicks), postgresMs: toMs(postgresTicks) };
  } catch {
    return null;
  }
}

/** What happened between two snapshots: the machine's busy share and PostgreSQL's CPU time. */
export function cpuBetween(before: HostCpu | null, after: HostCpu | null): { busyShare: number; postgresMs: number } | null {
  if (!before || !after || after.totalMs <= before.totalMs) return null;
  return { busyShare: (after.busyMs - before.busyMs) / (after.totalMs - before.totalMs), postgresMs: after.postgresMs - before.postgresMs };
}

/** CPU time (user + system) of one process so far, or NaN where /proc is missing. */
export function processCpuMs(pid: number): number {
  try {
    const after = (readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1] ?? "").split(" ");
    return ((Number(after[11]) + Number(after[12])) * 1000) / clockTicksPerSecond;
  } catch {
    return Number.NaN;
  }
}
