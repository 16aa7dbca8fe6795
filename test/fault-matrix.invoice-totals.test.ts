import type pg from "pg";
import { expect } from "vitest";
import { faultMatrix } from "./support/fault-matrix.js";
import { type InvoiceSpec, insertInvoices, liveInvoices, readInvoices, seededRandom, totalsMismatches } from "./support/invoice-data.js";
import { someoneWaitsOn } from "./support/wait-for.js";

/**
 * invoice-totals under the fault matrix: one job recomputes every invoice in
 * small chunks, and the test holds a row lock on one invoice's lines so the
 * job is in the middle of its work (earlier chunks committed, one waiting)
 * when each fault lands. Check: every invoice's totals are right.
 */
interface State {
  invoices: InvoiceSpec[];
  blocker: pg.PoolClient;
  blockerPid: number;
  released: boolean;
}

faultMatrix<State>({
  queue: "invoice-totals",
  async prepare(world) {
    const invoices = liveInvoices(600, seededRandom(2207), { maxLines: 12 });
    await insertInvoices(world.db.pool, invoices);
    const held = invoices[400] as InvoiceSpec;
    const blocker = await world.db.pool.connect();
    const blockerPid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid as number;
    await blocker.query("BEGIN");
    await blocker.query(`SELECT 1 FROM "invoice_line_items" WHERE "invoiceId" = $1::uuid FOR UPDATE`, [held.id]);
    return { invoices, blocker, blockerPid, released: false };
  },
  enqueue: (world) => world.producer.enqueue("invoice-totals", { all: true, chunkSize: 20, parallelism: 2 }),
  // Both kills land on a job blocked on the held lines: the retried attempt blocks there again.
  midWork: (world, state) => someoneWaitsOn(state.blockerPid, (sql, values) => world.db.pool.query(sql, values)),
  async afterFaults(_world, state) {
    await release(state);
  },
  release,
  async verify(world, state, job) {
    expect(totalsMismatches(await readInvoices(world.db.pool))).toEqual([]);
    expect((await readInvoices(world.db.pool)).size).toBe(state.invoices.length);
    expect(job.returnvalue).toMatchObject({ invoicesUpdated: state.invoices.length });
  },
});

async function release(state: State): Promise<void> {
  if (state.released) return;
  state.released = true;
  await state.blocker.query("ROLLBACK");
  state.blocker.release();
}
