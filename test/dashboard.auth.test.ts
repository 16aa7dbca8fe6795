import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboard } from "../src/dashboard/server.js";
import { ConfigError } from "../src/lib/errors.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";

const user = "operator";
const password = "correct horse battery staple";
const token = "tok_0123456789abcdef0123456789";
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`;

describe("the dashboard only answers authenticated requests", () => {
  let db: TestDatabase;
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  let logs: ReturnType<typeof memoryLogger>;

  beforeAll(async () => {
    db = await createTestDatabase();
    logs = memoryLogger("debug");
    const config = testConfig(db.url, { DASHBOARD_USER: user, DASHBOARD_PASSWORD: password, DASHBOARD_TOKEN: token });
    dashboard = await startDashboard({ config, logger: logs.logger, host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    await dashboard?.close();
    await db?.drop();
  });

  const get = (path: string, authorization?: string) => fetch(`${dashboard.url}${path}`, { headers: authorization ? { authorization } : {} });

  it("answers 401 with a WWW-Authenticate challenge (so browsers prompt) when no credentials are sent", async () => {
    for (const path of ["/", "/metrics", "/api/queues", "/queue/invoice-totals"]) {
      const response = await get(path);
      expect(response.status, path).toBe(401);
      expect(response.headers.get("www-authenticate"), path).toMatch(/Basic realm="dbjobs"/);
    }
  });

  it("answers 401 to a wrong password, a wrong user, a wrong token and a malformed header", async () => {
    expect((await get("/metrics", basic(user, "correct horse battery stapl"))).status).toBe(401);
    expect((await get("/metrics", basic("admin", password))).status).toBe(401);
    expect((await get("/metrics", basic(user, ""))).status).toBe(401);
    expect((await get("/metrics", `Bearer ${token}x`)).status).toBe(401);
    expect((await get("/metrics", `Bearer ${token.slice(0, -1)}`)).status).toBe(401);
    expect((await get("/metrics", "Basic !!!not-base64")).status).toBe(401);
    expect((await get("/metrics", token)).status).toBe(401);
  });

  it("serves the board, its API and /metrics to the right basic credentials", async () => {
    const board = await get("/", basic(user, password));
    expect(board.status).toBe(200);
    expect(await board.text()).toContain("<title>dbjobs</title>");
    const api = await get("/api/queues", basic(user, password));
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: { name: string }[] };
    expect(body.queues.map((queue) => queue.name)).toContain("invoice-totals");
    expect((await get("/metrics", basic(user, password))).status).toBe(200);
  });

  it("serves the same to the right bearer token", async () => {
    expect((await get("/metrics", `Bearer ${token}`)).status).toBe(200);
    expect((await get("/api/queues", `bearer ${token}`)).status).toBe(200);
  });

  it("refuses a write another site's page makes with the browser's cached credentials (CSRF), and allows same-origin ones", async () => {
    const postFrom = (origin: string) =>
      fetch(`${dashboard.url}/queues/invoice-totals/jobs`, {
        method: "POST",
        headers: { authorization: basic(user, password), "content-type": "application/json", origin },
        body: JSON.stringify({ all: true }),
      });
    const crossSite = await postFrom("https://evil.example");
    expect(crossSite.status).toBe(403);
    const sameOrigin = await postFrom(dashboard.url);
    expect(sameOrigin.status).toBe(201);
  });

  it("leaves /health open and never writes a password or token to the log", async () => {
    const health = await get("/health");
    expect([200, 503]).toContain(health.status);
    const logText = JSON.stringify(logs.lines());
    expect(logText).toContain("bad or missing credentials");
    expect(logText).not.toContain(password);
    expect(logText).not.toContain("correct horse");
    expect(logText).not.toContain(token.slice(0, 12));
    expect(logText).not.toContain(Buffer.from(`${user}:${password}`).toString("base64"));
  });
});

describe("starting the dashboard without credentials", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("is refused with an error that says which variables to set", async () => {
    const error = await startDashboard({ config: testConfig(db.url), logger: memoryLogger().logger, port: 0 }).then(
      (running) => running.close().then(() => undefined),
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/DASHBOARD_USER and DASHBOARD_PASSWORD .* or DASHBOARD_TOKEN/);
    expect((error as Error).message).toMatch(/DASHBOARD_ALLOW_NO_AUTH=true/);
  });

  it("is refused when only the user is set", async () => {
    await expect(startDashboard({ config: testConfig(db.url, { DASHBOARD_USER: user }), logger: memoryLogger().logger, port: 0 })).rejects.toThrow(
      /Set both DASHBOARD_USER and DASHBOARD_PASSWORD/,
    );
  });

  it("is refused even with DASHBOARD_ALLOW_NO_AUTH=true when it would bind to a non-loopback address", async () => {
    const config = testConfig(db.url, { DASHBOARD_ALLOW_NO_AUTH: "true", DASHBOARD_HOST: "0.0.0.0" });
    await expect(startDashboard({ config, logger: memoryLogger().logger, port: 0 })).rejects.toThrow(/only honoured when DASHBOARD_HOST is 127\.0\.0\.1/);
  });

  it("is allowed with DASHBOARD_ALLOW_NO_AUTH=true on 127.0.0.1, and says so in the log", async () => {
    const logs = memoryLogger("info");
    const config = testConfig(db.url, { DASHBOARD_ALLOW_NO_AUTH: "true", DASHBOARD_HOST: "127.0.0.1" });
    const dashboard = await startDashboard({ config, logger: logs.logger, port: 0 });
    try {
      expect((await fetch(`${dashboard.url}/metrics`)).status).toBe(200);
      expect(logs.lines().some((line) => String(line.msg).includes("WITHOUT authentication"))).toBe(true);
    } finally {
      await dashboard.close();
    }
  });

  it("makes `dbjobs dashboard` exit non-zero with that message", async () => {
    const config = testConfig(db.url);
    const { code, stderr } = await runCli(["dashboard", "--port", "0"], cliEnv(config, { DASHBOARD_HOST: "127.0.0.1" }));
    expect(code).toBe(2);
    expect(stderr).toMatch(/The dashboard needs credentials: set DASHBOARD_USER and DASHBOARD_PASSWORD/);
  });
});
