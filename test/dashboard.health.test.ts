import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HealthReport } from "../src/dashboard/health.js";
import { startDashboard } from "../src/dashboard/server.js";
import { queueNames } from "../src/queues/contracts.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig, testQueueBackend } from "./support/test-env.js";

/** A port nothing listens on: taken from the OS, then released. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const token = "health-test-token-0123456789";
const backend = testQueueBackend();

/** The queue store's figures: under `queueStore` on both backends, and under their old name `redis` on Redis only. */
function expectQueueStore(body: HealthReport, ok: boolean): void {
  const { kind, ...figures } = body.queueStore;
  expect({ kind, ok: figures.ok }).toEqual({ kind: backend, ok });
  expect(body.redis).toEqual(backend === "redis" ? figures : undefined);
}

async function health(url: string): Promise<{ status: number; body: HealthReport; text: string }> {
  const response = await fetch(`${url}/health`);
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text) as HealthReport, text };
}

describe("/health", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("is 200 without credentials when PostgreSQL and the queue store answer, and counts the workers of each queue", async () => {
    const config = testConfig(db.url, { DASHBOARD_TOKEN: token });
    const dashboard = await startDashboard({ config, logger: memoryLogger("warn").logger, host: "127.0.0.1", port: 0 });
    let worker: RunningWorker | undefined;
    try {
      const before = await health(dashboard.url);
      expect(before.status).toBe(200);
      expect(before.body.postgres.ok).toBe(true);
      expectQueueStore(before.body, true);
      // No worker anywhere: degraded, not down (documented in health.ts and docs/operating.md).
      expect(before.body.status).toBe("degraded");
      expect(before.body.warnings).toContain("no worker connected to queue invoice-totals");
      expect(before.body.queues.map((entry) => entry.queue).sort()).toEqual([...queueNames].sort());

      worker = await startWorker("invoice-totals", { config, logger: memoryLogger("silent").logger });
      const after = await health(dashboard.url);
      expect(after.status).toBe(200);
      expect(after.body.queues.find((entry) => entry.queue === "invoice-totals")?.workers).toBe(1);
      expect(after.body.warnings).not.toContain("no worker connected to queue invoice-totals");
    } finally {
      await worker?.close();
      await dashboard.close();
    }
  });

  it("is 503 naming the queue store when it is down, without revealing where it is; /metrics fails too", async () => {
    const port = await deadPort();
    const deadQueueDatabase = new URL(db.url);
    deadQueueDatabase.port = String(port);
    const config = testConfig(db.url, {
      DASHBOARD_TOKEN: token,
      DB_CONNECT_TIMEOUT_MS: "500",
      ...(backend === "redis" ? { REDIS_URL: `redis://127.0.0.1:${port}` } : { QUEUE_DATABASE_URL: deadQueueDatabase.toString() }),
    });
    const dashboard = await startDashboard({ config, logger: memoryLogger("silent").logger, host: "127.0.0.1", port: 0 });
    try {
      const report = await health(dashboard.url);
      expect(report.status).toBe(503);
      expect(report.body.status).toBe("down");
      expectQueueStore(report.body, false);
      expect(report.body.queueStore.error).toBe("ECONNREFUSED");
      expect(report.body.postgres.ok).toBe(true);
      expect(report.body.reasons).toEqual([
        backend === "redis" ? "Redis did not answer PING (ECONNREFUSED)" : "The queue database did not answer (ECONNREFUSED)",
      ]);
      expect(report.body.queues.every((entry) => entry.workers === null)).toBe(true);
      expect(report.text).not.toContain(String(port));
      const metrics = await fetch(`${dashboard.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      expect(metrics.status).toBe(503);
    } finally {
      await dashboard.close();
    }
  });

  it("is 503 naming PostgreSQL when its database cannot be reached, without revealing the URL", async () => {
    const missing = new URL(db.url);
    missing.pathname = "/dbjobs_no_such_database_h8";
    // The queues stay in the test's own database on PostgreSQL, so only DATABASE_URL is missing.
    const config = testConfig(missing.toString(), { DASHBOARD_TOKEN: token, ...(backend === "postgres" ? { QUEUE_DATABASE_URL: db.url } : {}) });
    const dashboard = await startDashboard({ config, logger: memoryLogger("silent").logger, host: "127.0.0.1", port: 0 });
    try {
      const report = await health(dashboard.url);
      expect(report.status).toBe(503);
      expect(report.body.postgres).toMatchObject({ ok: false, error: "3D000" });
      expectQueueStore(report.body, true);
      expect(report.body.reasons).toEqual(["PostgreSQL did not answer SELECT 1 (3D000)"]);
      expect(report.text).not.toContain("dbjobs_no_such_database_h8");
      expect(report.text).not.toMatch(/postgres(ql)?:\/\/|:5432/);
    } finally {
      await dashboard.close();
    }
  });
});
