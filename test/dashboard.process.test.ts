import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, spawnCli } from "./support/spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig } from "./support/test-env.js";

const token = "process-test-token-0123456789";

describe("`dbjobs dashboard` as a process", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("serves /metrics to curl-style requests, keeps the token out of its log, and exits 0 on SIGTERM", async () => {
    const config = testConfig(db.url);
    const run = spawnCli(["dashboard", "--host", "127.0.0.1", "--port", "0"], cliEnv(config, { DASHBOARD_TOKEN: token }));
    try {
      await run.waitForOutput(/dashboard listening/, 60_000);
      const url = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(run.stderr())?.[1];
      expect(url).toBeDefined();
      const refused = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token.replace("0", "1")}` } });
      expect(refused.status).toBe(401);
      const metrics = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('dbjobs_queue_jobs{queue="invoice-totals",state="waiting"} 0');

      run.child.kill("SIGTERM");
      const { code } = await run.exited;
      expect(code).toBe(0);
      expect(run.stderr()).toMatch(/shutdown complete/);
      expect(run.stderr() + run.stdout()).not.toContain(token.slice(0, 16));
      expect(run.stderr() + run.stdout()).not.toContain(token.replace("0", "1").slice(0, 16));
    } finally {
      if (run.child.exitCode === null) run.child.kill("SIGKILL");
    }
  });
});
