import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboard } from "../src/dashboard/server.js";
import type { Config } from "../src/lib/config.js";
import { Producer } from "../src/queues/producer.js";
import { startWorker } from "../src/queues/start-worker.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

const user = "operator-alice";
const password = "control-secret-password";
const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

/** The HTTP cancel route: behind the dashboard's auth, removing a job not yet started, and refusing what it cannot cancel with a clear answer. */
describe("POST /queues/<queue>/jobs/<id>/cancel", () => {
  const testDatabase = useTestDb();
  let config: Config;
  let producer: Producer;
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  const memory = memoryLogger("info");

  beforeAll(async () => {
    config = testConfig(testDatabase.url, { DASHBOARD_USER: user, DASHBOARD_PASSWORD: password });
    producer = Producer.fromConfig(config);
    dashboard = await startDashboard({ config, logger: memory.logger, host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    await dashboard?.close();
    await producer?.close();
  });

  const cancel = (queue: string, id: string, headers: Record<string, string> = { authorization }) =>
    fetch(`${dashboard.url}/queues/${queue}/jobs/${id}/cancel`, { method: "POST", headers });

  it("removes a waiting job, answers 200, and records the operator action under the authenticated user", async () => {
    const job = await producer.enqueue("transaction-retry", {});
    const response = await cancel("transaction-retry", String(job.id));
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ outcome: "removed", stateBefore: "waiting", state: "removed" });
    expect(await (await producer.queue("transaction-retry")).getJob(String(job.id))).toBeUndefined();
    expect(memory.lines()).toContainEqual(
      expect.objectContaining({ msg: "operator action", operatorAction: "cancel", target: `transaction-retry/${job.id}`, actor: user, via: "http" }),
    );
    const { rows } = await testDatabase.db.pool.query<{ actor: string; source: string; outcome: string }>(
      `SELECT actor, source, outcome FROM "dbjobs"."audit_log" WHERE action = 'cancel' AND target = $1`,
      [`transaction-retry/${job.id}`],
    );
    expect(rows).toEqual([{ actor: user, source: "dashboard", outcome: "ok" }]);
  });

  it("needs authentication, answers 404 for an unknown job or queue and 409 for a finished one", async () => {
    const job = await producer.enqueue("transaction-retry", {});
    expect((await cancel("transaction-retry", String(job.id), {})).status).toBe(401);
    expect(await job.getState()).toBe("waiting");

    const unknownJob = await cancel("transaction-retry", "no-such-job");
    expect(unknownJob.status).toBe(404);
    expect(((await unknownJob.json()) as { error: string }).error).toMatch(/No job "no-such-job" in queue "transaction-retry"/);
    expect((await cancel("no-such-queue", "1")).status).toBe(404);

    const worker = await startWorker("transaction-retry", { config, logger: memoryLogger("warn").logger });
    try {
      await waitFor("the job to complete", async () => (await job.getState()) === "completed", 30_000);
    } finally {
      await worker.close();
    }
    const finished = await cancel("transaction-retry", String(job.id));
    expect(finished.status).toBe(409);
    expect(((await finished.json()) as { error: string }).error).toMatch(/is completed: it has already ended, so there is nothing to cancel/);
  });
});
