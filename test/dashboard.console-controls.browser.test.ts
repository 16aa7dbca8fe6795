import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboard } from "../src/dashboard/server.js";
import type { Config } from "../src/lib/config.js";
import { packageRoot } from "../src/lib/paths.js";
import { Producer } from "../src/queues/producer.js";
import { readScheduleControls } from "../src/queues/schedule-controls.js";
import { seedArchivableMonth } from "./support/archive-data.js";
import { browserSkipReason, launchBrowser, type TestBrowser } from "./support/browser.js";
import { consoleUsersSetting, operatorUser, viewerUser } from "./support/console-users.js";
import { type CliRun, cliEnv, spawnCli } from "./support/spawn-cli.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";
import { someoneWaitsOn, waitFor } from "./support/wait-for.js";

/**
 * The console's job and schedule controls in Debian's Chromium: an operator
 * cancels a waiting job from the Search page and an active one running on a
 * real worker process from the Jobs page, pauses, resumes and triggers a
 * schedule, and the Audit page names the operator for each; a viewer sees
 * none of these buttons and its POSTs are answered 403.
 */
const skipReason = browserSkipReason();
if (skipReason) console.warn(skipReason);

const operator = operatorUser;
const viewer = viewerUser;
const screenshots = join(packageRoot, "test-artifacts", "screenshots");
// Two invoices: a one-invoice job is deduplicated, which delays it; these wait (no worker runs invoice-totals here).
const waitingPayload = (n: number) => ({ invoiceIds: [n, n + 1].map((k) => `00000000-0000-4000-8000-${String(k).padStart(12, "0")}`) });

describe.skipIf(skipReason !== undefined)("console controls: cancel, trigger, pause and resume in headless Chromium", { timeout: 240_000 }, () => {
  let db: TestDatabase;
  let client: pg.Client;
  let config: Config;
  let producer: Producer;
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  let worker: CliRun | undefined;
  const browsers: TestBrowser[] = [];

  async function pageAs(credentials: { username: string; password: string }): Promise<Page> {
    const browser = await launchBrowser({ httpCredentials: credentials, viewport: { width: 1440, height: 900 } });
    browsers.push(browser);
    return browser.context.newPage();
  }
  const shoot = (page: Page, name: string) => page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  const jobRow = (page: Page, queue: string, id: string) => page.locator(`tr[data-job="${queue}/${id}"]`);
  const scheduleRow = (page: Page, id: string) => page.locator(`tr[data-schedule="${id}"]`);
  const auditRows = async () =>
    (
      await client.query<{ actor: string; source: string; action: string; target: string; parameters: Record<string, unknown> }>(
        `SELECT "actor", "source", "action", "target", "parameters" FROM "dbjobs"."audit_log" ORDER BY "at", "id"`,
      )
    ).rows;

  beforeAll(async () => {
    await mkdir(screenshots, { recursive: true });
    db = await createTestDatabase();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    config = testConfig(db.url, { DASHBOARD_USERS: await consoleUsersSetting() });
    producer = Producer.fromConfig(config);
    dashboard = await startDashboard({ config, logger: memoryLogger("warn").logger, host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    for (const browser of browsers) await browser.close();
    if (worker && worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
    await worker?.exited;
    await dashboard?.close();
    for (const name of ["invoice-totals", "archiving", "cache-prefetch"] as const) await (await producer?.queue(name))?.obliterate({ force: true });
    await producer?.close();
    await client?.end();
    await db?.drop();
  });

  it("shows a viewer the waiting job and the schedules without any control, and answers its POSTs with 403", async () => {
    const job = await producer.enqueue("invoice-totals", waitingPayload(1));
    const id = String(job.id);
    const page = await pageAs(viewer);
    await page.goto(`${dashboard.url}/console/jobs`);
    await jobRow(page, "invoice-totals", id).waitFor({ state: "visible" });
    expect(await page.getByRole("button", { name: "Cancel" }).count()).toBe(0);
    await shoot(page, "jobs-viewer");
    await page.goto(`${dashboard.url}/console/schedules`);
    await scheduleRow(page, "archiving-monthly").waitFor({ state: "visible" });
    for (const name of ["Trigger", "Pause", "Resume"]) expect(await page.getByRole("button", { name }).count()).toBe(0);
    await shoot(page, "schedules-viewer");

    const posts = [
      ["/console/jobs/cancel", { queue: "invoice-totals", jobId: id }],
      ["/console/schedules/trigger", { id: "archiving-monthly" }],
      ["/console/schedules/pause", { id: "archiving-monthly" }],
      ["/console/schedules/resume", { id: "archiving-monthly" }],
    ] as const;
    for (const [path, form] of posts) expect((await page.request.post(`${dashboard.url}${path}`, { form: { ...form } })).status(), path).toBe(403);
    expect(await job.getState()).toBe("waiting");
    expect((await readScheduleControls(client)).get("archiving-monthly")?.paused ?? false).toBe(false);
    expect(await (await producer.queue("archiving")).count()).toBe(0);
    expect(await auditRows()).toEqual([]);
    await job.remove();
  });

  it("lets an operator cancel a waiting job from the Search page, and the Audit page names the operator", async () => {
    const job = await producer.enqueue("invoice-totals", waitingPayload(3));
    const id = String(job.id);
    const page = await pageAs(operator);
    await page.goto(`${dashboard.url}/console/search?${new URLSearchParams({ id, queue: "invoice-totals" })}`);
    await jobRow(page, "invoice-totals", id).waitFor({ state: "visible" });
    await shoot(page, "search-not-finished-operator");
    await jobRow(page, "invoice-totals", id).getByRole("button", { name: "Cancel" }).click();
    const notice = page.getByRole("status").filter({ hasText: `Job ${id} in invoice-totals (waiting) had not started; it was removed` });
    await notice.waitFor({ state: "visible" });
    expect(await notice.getAttribute("data-outcome")).toBe("removed");
    expect(await (await producer.queue("invoice-totals")).getJob(id)).toBeUndefined();
    await shoot(page, "jobs-after-cancel-waiting");

    expect(await auditRows()).toEqual([
      { actor: "olga", source: "dashboard", action: "cancel", target: `invoice-totals/${id}`, parameters: { outcome: "removed", stateBefore: "waiting" } },
    ]);
    await page.goto(`${dashboard.url}/console/audit`);
    const row = page.locator("tr").filter({ hasText: `invoice-totals/${id}` });
    await row.waitFor({ state: "visible" });
    expect(await row.textContent()).toMatch(/olga.*dashboard.*cancel/s);
  });

  it("lets an operator cancel an archiving job running on a worker process; its batch rolls back", async () => {
    await seedArchivableMonth(client, { rows: 40_000, pendingEvery: 1001, keyPrefix: "console-cancel" });
    await client.query("ANALYZE transactions");
    const archived = async () => (await client.query<{ n: number }>("SELECT count(*)::int AS n FROM transactions_archive")).rows[0]?.n ?? 0;
    worker = spawnCli(["worker", "archiving"], cliEnv(config));
    await worker.waitForOutput(/worker started/, 90_000);
    const job = await producer.enqueue("archiving", { batchSize: 5000 });
    const id = String(job.id);
    await worker.waitForOutput(/archiving batch moved/, 90_000);
    // Holds the next batch statement mid-flight (its rows deleted, waiting to insert them), so the job is surely active when the button is pressed.
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    try {
      const blockerPid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid as number;
      await blocker.query("BEGIN");
      await blocker.query("LOCK TABLE transactions_archive IN SHARE MODE");
      await waitFor("the batch statement to wait on the test's lock", () => someoneWaitsOn(blockerPid, (sql, values) => client.query(sql, values)), 60_000);
      const archivedBeforeCancel = await archived();

      const page = await pageAs(operator);
      await page.goto(`${dashboard.url}/console/jobs`);
      const row = jobRow(page, "archiving", id);
      await row.waitFor({ state: "visible" });
      expect(await row.getAttribute("data-state")).toBe("active");
      await shoot(page, "jobs-active-operator");
      await row.getByRole("button", { name: "Cancel" }).click();
      const notice = page.getByRole("status").filter({ hasText: `Job ${id} in archiving (active) was stopped on its worker` });
      await notice.waitFor({ state: "visible", timeout: 30_000 });
      expect(await notice.getAttribute("data-outcome")).toBe("cancelled");
      expect(await notice.textContent()).toContain("cancelled: by olga (http)");
      await shoot(page, "jobs-after-cancel-active");
      await blocker.query("ROLLBACK");
      expect(await job.getState()).toBe("failed");
      expect(await archived()).toBe(archivedBeforeCancel);
    } finally {
      await blocker.end().catch(() => undefined);
    }
    const cancels = (await auditRows()).filter((row) => row.target === `archiving/${id}`);
    expect(cancels).toEqual([
      { actor: "olga", source: "dashboard", action: "cancel", target: `archiving/${id}`, parameters: { outcome: "cancelled", stateBefore: "active" } },
    ]);
  });

  it("lets an operator pause and resume a schedule, shown as paused between, and trigger one, which enqueues its job", async () => {
    const page = await pageAs(operator);
    await page.goto(`${dashboard.url}/console/schedules`);
    const row = scheduleRow(page, "analyze-nightly");
    await row.waitFor({ state: "visible" });
    expect(await row.locator("td.schedule-state").textContent()).toBe("active");

    await row.getByRole("button", { name: "Pause" }).click();
    await page.getByRole("status").filter({ hasText: "Schedule analyze-nightly paused." }).waitFor({ state: "visible" });
    expect(await row.getAttribute("data-paused")).toBe("yes");
    expect(await row.locator("td.schedule-state").textContent()).toBe("paused");
    expect(await row.getByRole("button", { name: "Pause" }).count()).toBe(0);
    expect((await readScheduleControls(client)).get("analyze-nightly")).toMatchObject({ paused: true, changedBy: "olga" });
    await shoot(page, "schedules-paused");

    await row.getByRole("button", { name: "Resume" }).click();
    await page.getByRole("status").filter({ hasText: "Schedule analyze-nightly resumed." }).waitFor({ state: "visible" });
    expect(await row.locator("td.schedule-state").textContent()).toBe("active");
    expect((await readScheduleControls(client)).get("analyze-nightly")?.paused).toBe(false);

    const prefetch = await producer.queue("cache-prefetch");
    expect(await prefetch.count()).toBe(0);
    await scheduleRow(page, "cache-prefetch-every-5-minutes").getByRole("button", { name: "Trigger" }).click();
    const notice = page.getByRole("status").filter({ hasText: "Schedule cache-prefetch-every-5-minutes triggered: cache-prefetch job" });
    await notice.waitFor({ state: "visible" });
    const jobId = (await notice.locator("code").nth(1).textContent()) as string;
    expect(await (await prefetch.getJob(jobId))?.getState()).toBe("waiting");
    await shoot(page, "schedules-after-trigger");

    const scheduleRows = (await auditRows()).filter((entry) => entry.action.startsWith("schedule."));
    expect(scheduleRows.map((entry) => [entry.actor, entry.source, entry.action, entry.target])).toEqual([
      ["olga", "dashboard", "schedule.pause", "analyze-nightly"],
      ["olga", "dashboard", "schedule.resume", "analyze-nightly"],
      ["olga", "dashboard", "schedule.trigger", "cache-prefetch-every-5-minutes"],
    ]);
    await page.goto(`${dashboard.url}/console/audit`);
    await page.locator("tr").filter({ hasText: "schedule.trigger" }).filter({ hasText: "olga" }).waitFor({ state: "visible" });
    await shoot(page, "audit-after-controls");
  });
});
