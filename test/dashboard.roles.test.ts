import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboard } from "../src/dashboard/server.js";
import type { Config } from "../src/lib/config.js";
import { hashPassword } from "../src/lib/password-hash.js";
import { Producer } from "../src/queues/producer.js";
import { type FailedGroups, failInvoiceJobs } from "./support/failed-jobs.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";

/**
 * Roles and CSRF over plain HTTP: users from DASHBOARD_USERS (scrypt hashes)
 * with roles viewer and operator, a viewer token, and the old single
 * credential, which means operator. A viewer reads everything and every write
 * it tries is 403; an operator's console form needs its CSRF token.
 */
const alice = { user: "alice", password: "alice-operator-password" };
const bob = { user: "bob", password: "bob-viewer-password" };
const legacy = { user: "ops", password: "single-credential-password" };
const viewerToken = "viewer_0123456789abcdef";
const basic = (who: { user: string; password: string }) => `Basic ${Buffer.from(`${who.user}:${who.password}`).toString("base64")}`;
// Cheap hashes keep the test fast; the format carries its own cost, so verification is the production path.
const cheap = { N: 1024, r: 8, p: 1 };

describe("dashboard roles and CSRF", { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let config: Config;
  let producer: Producer;
  let failed: FailedGroups;
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  let logs: ReturnType<typeof memoryLogger>;

  const request = (path: string, authorization: string, init: RequestInit = {}) =>
    fetch(`${dashboard.url}${path}`, { redirect: "manual", ...init, headers: { authorization, ...(init.headers as Record<string, string>) } });
  const stateOf = async (id: string) => (await (await producer.queue("invoice-totals")).getJobState(id)) as string;
  const states = (ids: string[]) => Promise.all(ids.map(stateOf));
  const fingerprintOf = (page: string, example: RegExp) => {
    const row = page.split("<tr ").find((chunk) => example.test(chunk)) ?? "";
    return /data-fingerprint="([0-9a-f]{12})"/.exec(row)?.[1] ?? "";
  };
  const csrfIn = (page: string) => /name="_csrf" value="([^"]+)"/.exec(page)?.[1] ?? "";
  const retryForm = (fields: Record<string, string>) => ({
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });

  beforeAll(async () => {
    db = await createTestDatabase();
    const users = [`${alice.user}:operator:${await hashPassword(alice.password, cheap)}`, `${bob.user}:viewer:${await hashPassword(bob.password, cheap)}`].join(
      ",",
    );
    config = testConfig(db.url, {
      DASHBOARD_USERS: users,
      DASHBOARD_USER: legacy.user,
      DASHBOARD_PASSWORD: legacy.password,
      DASHBOARD_VIEWER_TOKEN: viewerToken,
    });
    producer = Producer.fromConfig(config);
    failed = await failInvoiceJobs(config, producer, { rangeErrors: 3, refused: 2 });
    logs = memoryLogger("info");
    dashboard = await startDashboard({ config, logger: logs.logger, host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    await dashboard?.close();
    await (await producer?.queue("invoice-totals"))?.obliterate({ force: true });
    await producer?.close();
    await db?.drop();
  });

  it("lets a viewer read the console and a read-only board, with no retry button", async () => {
    const failures = await request("/console/failures", basic(bob));
    expect(failures.status).toBe(200);
    const page = await failures.text();
    expect(page).toContain("invoice-totals");
    expect(page).toMatch(/RangeError<\/code>: invoice &lt;uuid&gt; has &lt;n&gt; lines over the limit/);
    expect(page).toContain("bob (viewer)");
    expect(page).not.toContain("Retry this group");
    const api = (await (await request("/api/queues", basic(bob))).json()) as { queues: { name: string; readOnlyMode: boolean }[] };
    expect(api.queues.find((queue) => queue.name === "invoice-totals")?.readOnlyMode).toBe(true);
    const operatorApi = (await (await request("/api/queues", basic(alice))).json()) as typeof api;
    expect(operatorApi.queues.find((queue) => queue.name === "invoice-totals")?.readOnlyMode).toBe(false);
  });

  it("answers 403 to every write from a viewer, by password or by token, and changes nothing", async () => {
    const aliceFailures = await (await request("/console/failures", basic(alice))).text();
    const fingerprint = fingerprintOf(aliceFailures, /RangeError/);
    expect(fingerprint).toMatch(/^[0-9a-f]{12}$/);
    for (const authorization of [basic(bob), `Bearer ${viewerToken}`]) {
      const retryGroup = await request("/console/failures/retry", authorization, retryForm({ queue: "invoice-totals", fingerprint }));
      expect(retryGroup.status).toBe(403);
      const retryJob = await request(`/api/queues/invoice-totals/${failed.rangeErrors[0]}/retry/failed`, authorization, { method: "PUT" });
      expect(retryJob.status).toBe(403);
      const retryAll = await request("/api/queues/invoice-totals/retry/failed", authorization, { method: "PUT" });
      expect(retryAll.status).toBe(403);
      const enqueue = await request("/queues/invoice-totals/jobs", authorization, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ all: true }),
      });
      expect(enqueue.status).toBe(403);
      expect(((await enqueue.json()) as { error: string }).error).toMatch(/viewer role, which is read-only/);
    }
    expect(await states([...failed.rangeErrors, ...failed.refused])).toEqual(Array(5).fill("failed"));
    expect(await (await producer.queue("invoice-totals")).getJobCountByTypes("wait")).toBe(0);
  });

  it("refuses an operator's console form without its CSRF token, or with another user's, and retries the group with it", async () => {
    const page = await (await request("/console/failures", basic(alice))).text();
    expect(page).toContain("alice (operator)");
    expect(page).toContain("Retry this group");
    const fingerprint = fingerprintOf(page, /RangeError/);
    const token = csrfIn(page);
    expect(token.length).toBeGreaterThan(20);

    const withoutToken = await request("/console/failures/retry", basic(alice), retryForm({ queue: "invoice-totals", fingerprint }));
    expect(withoutToken.status).toBe(403);
    const legacyToken = csrfIn(await (await request("/console/failures", basic(legacy))).text());
    expect(legacyToken).not.toBe(token);
    const othersToken = await request("/console/failures/retry", basic(alice), retryForm({ queue: "invoice-totals", fingerprint, _csrf: legacyToken }));
    expect(othersToken.status).toBe(403);
    expect(await states(failed.rangeErrors)).toEqual(["failed", "failed", "failed"]);

    const retried = await request("/console/failures/retry", basic(alice), retryForm({ queue: "invoice-totals", fingerprint, _csrf: token }));
    expect(retried.status).toBe(303);
    expect(retried.headers.get("location")).toBe(`/console/failures?queue=invoice-totals&fingerprint=${fingerprint}&retried=3`);
    expect(await states(failed.rangeErrors)).toEqual(["waiting", "waiting", "waiting"]);
    expect(await states(failed.refused)).toEqual(["failed", "failed"]);
    const done = logs.lines().filter((line) => line.msg === "console action done");
    expect(done).toEqual([
      expect.objectContaining({
        action: "retry",
        target: `invoice-totals fingerprint ${fingerprint}`,
        parameters: { queue: "invoice-totals", fingerprint },
        affected: 3,
        user: "alice",
        role: "operator",
      }),
    ]);

    const audit = await (await request("/console/audit", basic(bob))).text();
    expect(audit).toMatch(
      new RegExp(`<td>alice</td><td>dashboard</td><td>retry</td><td>invoice-totals fingerprint ${fingerprint}</td>.*?<td class="num">3</td><td>ok</td>`, "s"),
    );
    const search = await request("/console/search?state=bogus", basic(bob));
    expect(search.status).toBe(200);
    expect(await search.text()).toMatch(/class="error">[^<]*bogus/);

    // Submitted twice (a double click, a reload): nothing left in the group, and the page says so.
    const again = await request("/console/failures/retry", basic(alice), retryForm({ queue: "invoice-totals", fingerprint, _csrf: token }));
    expect(again.status).toBe(303);
    expect(again.headers.get("location")).toContain(`gone=${fingerprint}`);
  });

  it("rejects a form naming an unknown queue or a malformed fingerprint with 400 and what to do", async () => {
    const token = csrfIn(await (await request("/console/failures", basic(alice))).text());
    const unknown = await request("/console/failures/retry", basic(alice), retryForm({ queue: "nope", fingerprint: "abcdefabcdef", _csrf: token }));
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain('Unknown queue "nope"');
    const malformed = await request("/console/failures/retry", basic(alice), retryForm({ queue: "invoice-totals", fingerprint: "<x>", _csrf: token }));
    expect(malformed.status).toBe(400);
  });

  it("keeps the single-credential setup working as operator, and refuses a wrong password for a hashed user", async () => {
    const page = await (await request("/console/failures", basic(legacy))).text();
    expect(page).toContain("ops (operator)");
    expect(page).toContain("Retry this group");
    expect((await request("/console/failures", basic({ user: "alice", password: "alice-operator-passwort" }))).status).toBe(401);
    expect((await request("/console/failures", basic({ user: "carol", password: alice.password }))).status).toBe(401);
  });

  it("serves the Schedules and Database pages: declared schedules, and partitions with the default one", async () => {
    const schedules = await (await request("/console/schedules", basic(bob))).text();
    expect(schedules).toContain("partition-maintenance-daily");
    expect(schedules).toContain("archiving-monthly");
    const database = await request("/console/database", basic(bob));
    expect(database.status).toBe(200);
    expect(database.headers.get("content-security-policy")).toContain("default-src 'none'");
    const text = await database.text();
    expect(text).toContain("transactions_default");
    expect(text).toContain("Rows in default partitions");
    expect(text).not.toContain("Could not read this section");
  });
});
