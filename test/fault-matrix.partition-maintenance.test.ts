import { expect } from "vitest";
import type { PartitionMaintenanceResult } from "../src/jobs/partition-maintenance/contract.js";
import { addUtcMonths, monthRange, utcMonthStart } from "../src/partitions/month-bounds.js";
import { type FaultWorld, faultMatrix } from "./support/fault-matrix.js";

/**
 * partition-maintenance under the fault matrix: 36 past months of rows all
 * sit in the default partition, and the job gives each month its own
 * partition, one month at a time, so each fault lands between and inside
 * those moves. Check: no row is lost or doubled (count, amount total and an
 * order-free hash over `transactions` unchanged), and the default partition
 * ends empty.
 */
const months = 36;
const rowsPerMonth = 4000;
const current = utcMonthStart(new Date());

interface State {
  before: unknown;
  rescuedAtFirstFault: number;
}

const totals = async (world: FaultWorld) =>
  (await world.db.pool.query(`SELECT count(*)::int AS rows, sum(amount)::text AS amount, sum(hashtextextended(t::text, 0))::text AS hash FROM transactions t`))
    .rows[0];

/** Past months that have a partition of their own by now. */
const rescuedMonths = async (world: FaultWorld) =>
  (
    await world.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'transactions'::regclass AND c.relname <> 'transactions_default' AND c.relname < $1`,
      [`transactions_${current.toISOString().slice(0, 7).replace("-", "_")}`],
    )
  ).rows[0]?.n ?? 0;

faultMatrix<State>({
  queue: "partition-maintenance",
  async prepare(world) {
    for (let back = 1; back <= months; back++) {
      const { start, end } = monthRange(addUtcMonths(current, -back));
      await world.db.pool.query(
        `INSERT INTO transactions (type, status, amount, "createdAt")
         SELECT 'DEPOSIT', 'COMPLETED', (g % 997) + 0.37, $1::timestamptz + (g::float8 / ($3::int + 1)) * ($2::timestamptz - $1::timestamptz)
           FROM generate_series(1, $3::int) g`,
        [start, end, rowsPerMonth],
      );
    }
    await world.db.pool.query("ANALYZE transactions");
    return { before: await totals(world), rescuedAtFirstFault: 0 };
  },
  enqueue: (world) => world.producer.enqueue("partition-maintenance", { table: "transactions", monthsAhead: 1 }),
  async midWork(world, state, nth) {
    const rescued = await rescuedMonths(world);
    if (nth === 1 && rescued >= 3) {
      state.rescuedAtFirstFault = rescued;
      return true;
    }
    return nth === 2 && rescued >= state.rescuedAtFirstFault + 3 && rescued < months;
  },
  async verify(world, state, job) {
    expect(await totals(world)).toEqual(state.before);
    const { rows } = await world.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM transactions_default");
    expect(rows[0]?.n).toBe(0);
    expect(await rescuedMonths(world)).toBe(months);
    expect(job.returnvalue as PartitionMaintenanceResult).toMatchObject({ defaultRows: 0 });
  },
});
