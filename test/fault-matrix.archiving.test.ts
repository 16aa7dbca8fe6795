import { expect } from "vitest";
import type { ArchivingResult } from "../src/jobs/archiving/contract.js";
import { seedArchivableMonth } from "./support/archive-data.js";
import { type FaultWorld, faultMatrix } from "./support/fault-matrix.js";

/**
 * archiving under the fault matrix: 40,040 rows past the 7-year cutoff, moved
 * in batches of 100, so every fault lands between and inside batches. Check:
 * count, distinct ids and an order-free hash over `transactions` +
 * `transactions_archive` are unchanged, and every eligible row is archived.
 */
const eligible = 40_000;
const checksumSql = `
SELECT count(*)::int AS rows, count(DISTINCT id)::int AS ids, sum(amount)::text AS amount, sum(hashtextextended(r::text, 0))::text AS hash
  FROM (SELECT * FROM transactions UNION ALL SELECT * FROM transactions_archive) r`;

interface State {
  before: unknown;
  archivedAtFirstFault: number;
}

const archived = async (world: FaultWorld) => (await world.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM transactions_archive")).rows[0]?.n ?? 0;

faultMatrix<State>({
  queue: "archiving",
  async prepare(world) {
    const client = await world.db.pool.connect();
    try {
      await seedArchivableMonth(client, { rows: eligible + eligible / 1000, pendingEvery: 1001, keyPrefix: "matrix" });
      await client.query("ANALYZE transactions");
    } finally {
      client.release();
    }
    return { before: (await world.db.pool.query(checksumSql)).rows[0], archivedAtFirstFault: 0 };
  },
  enqueue: (world) => world.producer.enqueue("archiving", { batchSize: 100 }),
  async midWork(world, state, nth) {
    const now = await archived(world);
    if (nth === 1 && now >= 2000) {
      state.archivedAtFirstFault = now;
      return true;
    }
    return nth === 2 && now >= state.archivedAtFirstFault + 2000;
  },
  async verify(world, state, job) {
    expect((await world.db.pool.query(checksumSql)).rows[0]).toEqual(state.before);
    expect(await archived(world)).toBe(eligible);
    expect((job.returnvalue as ArchivingResult).verified).toBe(true);
  },
});
