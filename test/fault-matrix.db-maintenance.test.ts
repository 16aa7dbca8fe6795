import pg from "pg";
import { expect } from "vitest";
import type { DbMaintenanceResult } from "../src/jobs/db-maintenance/contract.js";
import { createBloatedTable, indexState } from "./support/db-maintenance-harness.js";
import { type FaultWorld, faultMatrix } from "./support/fault-matrix.js";

/**
 * db-maintenance under the fault matrix: a REINDEX CONCURRENTLY of a bloated
 * table's two indexes, held mid-way by an old snapshot the test keeps open
 * (the build makes its invalid `_ccnew` copy, then waits for that snapshot),
 * so each fault lands with an invalid index on disk. The retried run first
 * drops what the killed one left (its DROP INDEX CONCURRENTLY waits for the
 * snapshot too, so the second kill lands there). Check: no invalid index is
 * left anywhere in the database, both indexes were rebuilt smaller, and the
 * run that completed skipped nothing.
 */
const table = "matrix_bloat";
const indexes = [`${table}_label_idx`, `${table}_pkey`];

interface State {
  before: Map<string, { bytes: number; relfilenode: number }>;
  snapshot: pg.Client;
  snapshotPid: number;
  released: boolean;
  waiterAtFirstFault: number;
}

/** Backends of the world's worker that wait on the test's snapshot (REINDEX or DROP INDEX CONCURRENTLY). */
async function waitersOnSnapshot(world: FaultWorld, snapshotPid: number): Promise<number[]> {
  const { rows } = await world.db.pool.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dbjobs:db-maintenance' AND $1::int = ANY(pg_blocking_pids(pid))`,
    [snapshotPid],
  );
  return rows.map((row) => row.pid);
}

faultMatrix<State>({
  queue: "db-maintenance",
  async prepare(world) {
    await createBloatedTable(world.database.url, table, 100_000);
    const before = new Map<string, { bytes: number; relfilenode: number }>();
    for (const index of indexes) {
      const state = await indexState(world.database.url, index);
      if (!state) throw new Error(`index ${index} missing after setup`);
      before.set(index, state);
    }
    const snapshot = new pg.Client({ connectionString: world.database.url, application_name: "fault-matrix-snapshot" });
    await snapshot.connect();
    const snapshotPid = (await snapshot.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid as number;
    // An open snapshot: a concurrent build (and a concurrent drop) waits for it before it can finish.
    await snapshot.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
    await snapshot.query(`SELECT count(*) FROM ${table}`);
    return { before, snapshot, snapshotPid, released: false, waiterAtFirstFault: 0 };
  },
  // lock_timeout also bounds the wait for old snapshots: long enough that the faults, not the timeout, end each wait.
  enqueue: (world) => world.producer.enqueue("db-maintenance", { analyze: false, reindex: true, tables: [table], lockTimeoutMs: 60_000 }),
  async midWork(world, state, nth) {
    const waiters = await waitersOnSnapshot(world, state.snapshotPid);
    if (nth === 1 && waiters.length > 0) {
      state.waiterAtFirstFault = waiters[0] as number;
      return true;
    }
    // The retried run's session, not the killed one still on its way out.
    return nth === 2 && waiters.some((pid) => pid !== state.waiterAtFirstFault);
  },
  async afterFaults(_world, state) {
    await release(state);
  },
  release,
  async verify(world, state, job) {
    const { rows: invalid } = await world.db.pool.query(
      `SELECT c.relname AS index, i.indrelid::regclass::text AS "table" FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid`,
    );
    expect(invalid).toEqual([]);
    const { rows: onTable } = await world.db.pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass ORDER BY 1`,
      [table],
    );
    expect(onTable.map((row) => row.name)).toEqual([...indexes].sort());
    for (const index of indexes) {
      const before = state.before.get(index);
      const after = await indexState(world.database.url, index);
      expect(after?.valid, index).toBe(true);
      expect(after?.relfilenode, `${index} rebuilt`).not.toBe(before?.relfilenode);
      expect(after?.bytes, `${index} smaller`).toBeLessThan((before?.bytes ?? 0) / 3);
    }
    const result = job.returnvalue as DbMaintenanceResult;
    // Nothing skipped: not "another run holds the lock", not a lock timeout, not a failed object.
    expect(result.skipped).toEqual([]);
    if (world.fault === "worker-sigkilled") {
      // The killed worker's backend may finish the build it waited in once the snapshot goes; the replacement rebuilds the rest.
      expect(indexes).toEqual(expect.arrayContaining(result.reindexed.map((entry) => entry.index)));
    } else {
      expect(result.reindexed.map((entry) => entry.index).sort()).toEqual([...indexes].sort());
    }
    // The run that completed dropped the invalid copy a killed run left.
    if (world.fault === "postgres-backends-killed-twice") expect(result.droppedInvalid).toEqual([expect.stringMatching(/_ccnew\d*$/)]);
  },
});

async function release(state: State): Promise<void> {
  if (state.released) return;
  state.released = true;
  await state.snapshot.query("COMMIT").catch(() => undefined);
  await state.snapshot.end().catch(() => undefined);
}
