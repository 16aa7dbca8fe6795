import { userInfo } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listAudit } from "../src/audit/list-audit.js";
import { startDashboard } from "../src/dashboard/server.js";
import type { Config } from "../src/lib/config.js";
import { queueStoreOptions } from "../src/lib/config.js";
import { fingerprintFailure } from "../src/lib/error-fingerprint.js";
import { type AnyQueue, createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import { getContract } from "../src/queues/contracts.js";
import { startWorker } from "../src/queues/start-worker.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * Every mutating CLI verb and the HTTP enqueue route leave one row in
 * dbjobs.audit_log: who, what, the target, the parameters, how many jobs,
 * and the outcome; `dbjobs audit` shows them; nothing updates or deletes one.
 */
const QUEUE = "invoice-totals";

describe("the audit log of operator actions", () => {
  const testDatabase = useTestDb();
  let config: Config;
  let store: QueueStore;
  let queue: AnyQueue;
  let env: Record<string, string>;

  beforeAll(async () => {
    config = testConfig(testDatabase.url);
    env = cliEnv(config, { LOG_LEVEL: "warn", DBJOBS_ACTOR: "alice@ops" });
    store = createQueueStore({ ...queueStoreOptions(config), role: "producer", poolSize: 2, applicationName: "audit-test" });
    queue = await store.queue(QUEUE, { defaultJobOptions: getContract(QUEUE).jobOptions });
  });
  afterAll(async () => {
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
    await store?.close();
  });

  const rows = () => listAudit(testDatabase.db.pool, { limit: 100 });

  it("retry of a fingerprint group: actor, target, parameters and the number of jobs retried", async () => {
    // Three jobs with the same bad payload fail at once, with one fingerprint.
    for (let index = 0; index < 3; index++) await queue.add(QUEUE, { invoiceIds: ["not-a-uuid"] });
    const running = await startWorker(QUEUE, { config, logger: memoryLogger("error").logger, db: testDatabase.db });
    await waitFor("three failed jobs", async () => (await queue.getJobCounts("failed")).failed === 3);
    await running.close();
    const [failed] = await queue.getJobs("failed", 0, 0);
    const { fingerprint } = fingerprintFailure(failed?.failedReason, failed?.stacktrace);

    const { code, stderr } = await runCli(["retry", QUEUE, "--fingerprint", fingerprint], env);
    expect(code, stderr).toBe(0);

    const [row] = await rows();
    expect(row).toMatchObject({
      actor: "alice@ops",
      source: "cli",
      action: "retry",
      target: `${QUEUE} fingerprint ${fingerprint}`,
      parameters: { queue: QUEUE, fingerprint },
      affected: 3,
      outcome: "ok",
    });
  });

  it("pause (as the OS user when DBJOBS_ACTOR is unset), resume, clean and enqueue, and a refused action with its error", async () => {
    const withoutActor = { ...env };
    delete withoutActor.DBJOBS_ACTOR;
    expect((await runCli(["pause", QUEUE], withoutActor)).code).toBe(0);
    expect((await runCli(["resume", QUEUE], env)).code).toBe(0);
    expect((await runCli(["clean", QUEUE, "--state", "waiting", "--older-than", "0s"], env)).code).toBe(0);
    const enqueued = await runCli(["enqueue", QUEUE, "--data", '{"all":true}', "--json"], env);
    expect(enqueued.code, enqueued.stderr).toBe(0);
    const jobId = (JSON.parse(enqueued.stdout) as { jobId: string }).jobId;
    expect((await runCli(["pause", "no-such-queue"], env)).code).toBe(2);

    const latest = (await rows()).slice(0, 5).reverse();
    expect(latest.map((row) => [row.actor, row.action, row.target, row.affected])).toEqual([
      [userInfo().username, "pause", QUEUE, null],
      ["alice@ops", "resume", QUEUE, null],
      ["alice@ops", "clean", QUEUE, 3],
      ["alice@ops", "enqueue", QUEUE, 1],
      ["alice@ops", "pause", "no-such-queue", null],
    ]);
    // The three jobs the retry above moved back to waiting (no worker runs now).
    expect(latest[2]?.parameters).toEqual({ queue: QUEUE, state: "waiting", olderThanMs: 0 });
    expect(latest[3]?.parameters).toEqual({ queue: QUEUE, wait: false, jobId });
    expect(latest.slice(0, 4).every((row) => row.outcome === "ok")).toBe(true);
    expect(latest[4]?.outcome).toMatch(/^error: Unknown queue "no-such-queue"/);
  });

  it("an enqueue over HTTP is recorded with the dashboard user", async () => {
    const dashboard = await startDashboard({
      config: { ...config, DASHBOARD_USER: "bob", DASHBOARD_PASSWORD: "bob-secret-password" },
      logger: memoryLogger("error").logger,
      host: "127.0.0.1",
      port: 0,
    });
    try {
      const response = await fetch(`${dashboard.url}/queues/${QUEUE}/jobs?jobId=audited-1`, {
        method: "POST",
        headers: { authorization: `Basic ${Buffer.from("bob:bob-secret-password").toString("base64")}`, "content-type": "application/json" },
        body: JSON.stringify({ all: true }),
      });
      expect(response.status).toBe(201);
    } finally {
      await dashboard.close();
    }
    const [row] = await rows();
    expect(row).toMatchObject({ actor: "bob", source: "dashboard", action: "enqueue", target: QUEUE, affected: 1, outcome: "ok" });
    expect(row?.parameters).toEqual({ queue: QUEUE, jobId: "audited-1" });
    expect(JSON.stringify(row)).not.toContain("bob-secret-password");
  });

  it("`dbjobs audit --json` lists the rows newest first, and --since narrows them", async () => {
    const all = await runCli(["audit", "--json", "--limit", "3"], env);
    expect(all.code, all.stderr).toBe(0);
    const entries = (JSON.parse(all.stdout) as { entries: { action: string; actor: string; at: string }[] }).entries;
    expect(entries.map((entry) => [entry.action, entry.actor])).toEqual([
      ["enqueue", "bob"],
      ["pause", "alice@ops"],
      ["enqueue", "alice@ops"],
    ]);
    const future = await runCli(["audit", "--json", "--since", new Date(Date.now() + 60_000).toISOString()], env);
    expect((JSON.parse(future.stdout) as { entries: unknown[] }).entries).toEqual([]);
  });

  it("refuses UPDATE, DELETE and TRUNCATE of audit rows", async () => {
    const before = (await rows()).length;
    const pool = testDatabase.db.pool;
    await expect(pool.query(`UPDATE "dbjobs"."audit_log" SET "actor" = 'mallory'`)).rejects.toThrow(/append-only: UPDATE refused/);
    await expect(pool.query(`DELETE FROM "dbjobs"."audit_log"`)).rejects.toThrow(/append-only: DELETE refused/);
    await expect(pool.query(`DELETE FROM "dbjobs"."audit_log_default"`)).rejects.toThrow(/append-only: DELETE refused/);
    await expect(pool.query(`TRUNCATE "dbjobs"."audit_log"`)).rejects.toThrow(/append-only: TRUNCATE refused/);
    const after = await rows();
    expect(after).toHaveLength(before);
    expect(after.some((row) => row.actor === "mallory")).toBe(false);
  });
});
