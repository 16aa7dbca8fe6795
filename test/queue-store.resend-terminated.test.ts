import pg from "pg";
import { describe, expect, it } from "vitest";
import { resendTerminatedQueries } from "../src/lib/resend-terminated.js";
import { useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * The PostgreSQL queue store's pool sends a statement again when the server
 * terminated the connection under it (pg_terminate_backend, as in the fault
 * matrix): a worker's move of a failed job to its retry is not lost. The
 * statement here waits on a table the test holds locked, so the test can
 * terminate it in flight, then let the resent one through.
 */
describe("queue store pool: a statement whose connection was terminated is sent again", () => {
  const testDatabase = useTestDb();

  async function terminateInFlight(pool: pg.Pool, applicationName: string) {
    await testDatabase.db.pool.query("CREATE TABLE IF NOT EXISTS resend_probe (n int)");
    const holder = await testDatabase.db.pool.connect();
    try {
      await holder.query("BEGIN; LOCK TABLE resend_probe IN ACCESS EXCLUSIVE MODE");
      const result = pool.query<{ n: number; pid: number }>("SELECT count(*)::int AS n, pg_backend_pid() AS pid FROM resend_probe");
      result.catch(() => undefined);
      const waiting = `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`;
      const first = await waitFor("the statement to wait on the lock", async () => (await testDatabase.db.pool.query(waiting, [applicationName])).rows[0]?.pid);
      await testDatabase.db.pool.query("SELECT pg_terminate_backend($1)", [first]);
      // Once resent (when it is), the statement waits on the lock again, on another connection.
      await waitFor("the first statement to end, and any resend to wait", async () => {
        const { rows } = await testDatabase.db.pool.query<{ pid: number }>(waiting, [applicationName]);
        return rows.every((row) => row.pid !== first) && { pids: rows.map((row) => row.pid) };
      });
      return { first, result };
    } finally {
      await holder.query("ROLLBACK");
      holder.release();
    }
  }

  it("answers from a fresh connection when the first was terminated mid-statement", async () => {
    const pool = new pg.Pool({ connectionString: testDatabase.url, application_name: "resend-probe", max: 2 });
    resendTerminatedQueries(pool);
    try {
      const { first, result } = await terminateInFlight(pool, "resend-probe");
      const { rows } = await result;
      expect(rows[0]?.n).toBe(0);
      expect(rows[0]?.pid).not.toBe(first);
    } finally {
      await pool.end();
    }
  });

  it("without it, the statement fails with the termination (what a worker's queue store lost)", async () => {
    const pool = new pg.Pool({ connectionString: testDatabase.url, application_name: "plain-probe", max: 2 });
    pool.on("error", () => undefined);
    try {
      const { result } = await terminateInFlight(pool, "plain-probe");
      await expect(result).rejects.toMatchObject({ code: "57P01" });
    } finally {
      await pool.end();
    }
  });

  it("does not resend a statement that failed for any other reason", async () => {
    const pool = new pg.Pool({ connectionString: testDatabase.url, application_name: "resend-other", max: 2 });
    resendTerminatedQueries(pool);
    try {
      // A sequence is not rolled back: it counts how many times the statement ran.
      await testDatabase.db.pool.query("CREATE SEQUENCE IF NOT EXISTS resend_runs");
      await expect(pool.query("SELECT nextval('resend_runs') / 0")).rejects.toMatchObject({ code: "22012" });
      expect((await testDatabase.db.pool.query("SELECT last_value::int AS runs FROM resend_runs")).rows[0]?.runs).toBe(1);
      await expect(pool.query("SELEC 1")).rejects.toMatchObject({ code: "42601" });
    } finally {
      await pool.end();
    }
  });
});
