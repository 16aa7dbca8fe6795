import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HealthReport } from "../src/dashboard/health.js";
import { deadPort } from "./support/dead-port.js";
import { cliEnv, spawnCli } from "./support/spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig, testRedisUrl } from "./support/test-env.js";

const password = "d4shboard-s3cret-pw";
const token = "store-down-test-token-0123456789";
const connectTimeoutMs = 3000;
const invoiceId = "0b6f7c1e-3f7a-4c1e-9d2a-5e8b7c6d4f21";

type Backend = "redis" | "postgres";

const expected = {
  redis: { service: "Redis", message: /^Cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ .*set REDIS_URL/ },
  postgres: {
    service: "PostgreSQL queue database",
    message:
      /^Cannot reach PostgreSQL at postgresql:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/.*set QUEUE_DATABASE_URL \(or DIRECT_DATABASE_URL, else DATABASE_URL\)/,
  },
} as const;

function storeDownEnv(backend: Backend, databaseUrl: string, port: number): Record<string, string> {
  const queueDatabase = new URL(databaseUrl);
  queueDatabase.port = String(port);
  queueDatabase.password = password;
  const config = testConfig(databaseUrl, {
    QUEUE_BACKEND: backend,
    ...(backend === "redis" ? { REDIS_URL: `redis://:${password}@127.0.0.1:${port}` } : { QUEUE_DATABASE_URL: queueDatabase.toString() }),
  });
  return cliEnv(config, { LOG_FORMAT: "json", DASHBOARD_TOKEN: token, QUEUE_CONNECT_TIMEOUT_MS: String(connectTimeoutMs) });
}

/** The test's real queue store for `backend`. */
function storeUpEnv(backend: Backend, databaseUrl: string): Record<string, string> {
  return backend === "redis" ? { REDIS_URL: testRedisUrl() } : { QUEUE_DATABASE_URL: databaseUrl };
}

function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe.each(["redis", "postgres"] as const)("`dbjobs dashboard` with the queue store down (QUEUE_BACKEND=%s)", (backend) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it("listens at once, reports the outage on /health by its code, answers the enqueue route with a JSON 503, and logs the outage once", async () => {
    const args = ["dashboard", "--host", "127.0.0.1", "--port", "0"];
    const run = spawnCli(args, storeDownEnv(backend, database.url, await deadPort()));
    // The same dashboard with its store up, started beside it so both meet the same load on the machine.
    const baseline = spawnCli(args, { ...storeDownEnv(backend, database.url, 0), ...storeUpEnv(backend, database.url) });
    try {
      await Promise.all([run.waitForOutput(/dashboard listening/, 90_000), baseline.waitForOutput(/dashboard listening/, 90_000)]);
      baseline.child.kill("SIGTERM");
      const startupMs = (output: string) => Number(logLines(output).find((line) => line.msg === "dashboard listening")?.startupMs);
      const listening = logLines(run.stderr()).find((line) => line.msg === "dashboard listening");
      // startupMs is measured inside the process from the start of startDashboard (the CLI's own start-up is not
      // the dashboard's doing). About 0.9 s on an idle machine; here it is compared with the store-up run, because
      // on a loaded machine importing bullmq alone can take 2 s. Waiting for the store would add QUEUE_CONNECT_TIMEOUT_MS.
      expect(startupMs(run.stderr()) - startupMs(baseline.stderr())).toBeLessThan(1500);
      const url = String(listening?.url);

      // ~6 s of a load balancer polling /health, plus producers posting jobs.
      const until = Date.now() + 6000;
      let polls = 0;
      while (Date.now() < until) {
        const response = await fetch(`${url}/health`);
        const report = (await response.json()) as HealthReport;
        expect(response.status).toBe(503);
        expect(report.queueStore).toMatchObject({ kind: backend, ok: false, error: "ECONNREFUSED" });
        expect(report.reasons).toHaveLength(1);
        polls++;
        await sleep(300);
      }
      expect(polls).toBeGreaterThan(5);

      const started = performance.now();
      const refused = await fetch(`${url}/queues/invoice-totals/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ invoiceIds: [invoiceId] }),
      });
      const elapsedMs = performance.now() - started;
      expect(refused.status).toBe(503);
      expect(refused.headers.get("content-type")).toMatch(/^application\/json/);
      const body = (await refused.json()) as { error: string; code: string; reason: string };
      expect(body).toMatchObject({ code: "DBJOBS_QUEUE_UNAVAILABLE", reason: "ECONNREFUSED" });
      expect(body.error).toMatch(expected[backend].message);
      expect(body.error).not.toContain(password);
      expect(elapsedMs).toBeLessThan(connectTimeoutMs + 1000);

      // The payload is checked before the store: a bad one is a 400 naming the field, outage or not.
      const invalid = await fetch(`${url}/queues/invoice-totals/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ invoiceIds: ["not-a-uuid"] }),
      });
      expect(invalid.status).toBe(400);
      expect(await invalid.text()).toContain("invoiceIds.0");

      run.child.kill("SIGTERM");
      const { code } = await run.exited;
      expect(code).toBe(0);
      expect((await baseline.exited).code).toBe(0);

      const output = run.stderr() + run.stdout();
      expect(output).not.toContain(password);
      expect(output).not.toMatch(/^\s+at |"stack"/m);
      // Every line is structured, and the whole outage is one warning (the next would come 30 s later).
      expect(
        run
          .stderr()
          .trim()
          .split("\n")
          .every((line) => line.startsWith("{")),
      ).toBe(true);
      // A slow-query warning is the machine's load (SLOW_QUERY_MS), not the outage: only outage lines are counted.
      const warnings = logLines(run.stderr()).filter((line) => Number(line.level) >= 40 && line.msg !== "slow query");
      expect(warnings).toEqual([expect.objectContaining({ service: expected[backend].service, code: "ECONNREFUSED", downForMs: 0 })]);
    } finally {
      for (const child of [run.child, baseline.child]) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  }, 180_000);
});
