import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboard } from "../src/dashboard/server.js";
import type { Config } from "../src/lib/config.js";
import { packageRoot } from "../src/lib/paths.js";
import { Producer } from "../src/queues/producer.js";
import { browserSkipReason, launchBrowser, type TestBrowser } from "./support/browser.js";
import { consoleUsersSetting, operatorUser, viewerUser } from "./support/console-users.js";
import { type FailedGroups, failInvoiceJobs } from "./support/failed-jobs.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";

/**
 * The console in Debian's Chromium, as a viewer and as an operator: the
 * viewer finds no retry button and its POST is 403; the operator's form
 * without its CSRF token is 403 and with it retries a fingerprint group;
 * every page is screenshotted into test-artifacts/screenshots/, and no
 * request the browser makes leaves 127.0.0.1 (bull-board's outside font
 * included).
 */
const skipReason = browserSkipReason();
if (skipReason) console.warn(skipReason);

const operator = operatorUser;
const viewer = viewerUser;
const screenshots = join(packageRoot, "test-artifacts", "screenshots");

describe.skipIf(skipReason !== undefined)("the operator console in headless Chromium", { timeout: 180_000 }, () => {
  let db: TestDatabase;
  let config: Config;
  let producer: Producer;
  let failed: FailedGroups;
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  const browsers: TestBrowser[] = [];
  /** Every http(s)/ws URL any page asked for, and those that went elsewhere than 127.0.0.1 (aborted). */
  const requested: string[] = [];
  const outside: string[] = [];

  const stateOf = async (id: string) => (await (await producer.queue("invoice-totals")).getJobState(id)) as string;

  async function browserAs(credentials: { username: string; password: string }): Promise<BrowserContext> {
    const browser = await launchBrowser({ httpCredentials: credentials, viewport: { width: 1440, height: 900 } });
    browsers.push(browser);
    await browser.context.route(
      (url) => url.hostname !== "127.0.0.1",
      (route) => {
        outside.push(route.request().url());
        return route.abort();
      },
    );
    browser.context.on("request", (request) => {
      if (/^(https?|wss?):/.test(request.url())) requested.push(request.url());
    });
    return browser.context;
  }

  async function shoot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  }

  const groupRow = (page: Page, text: RegExp) => page.locator("tr[data-fingerprint]").filter({ hasText: text });

  beforeAll(async () => {
    await mkdir(screenshots, { recursive: true });
    db = await createTestDatabase();
    config = testConfig(db.url, { DASHBOARD_USERS: await consoleUsersSetting() });
    producer = Producer.fromConfig(config);
    failed = await failInvoiceJobs(config, producer, { rangeErrors: 3, refused: 2 });
    dashboard = await startDashboard({ config, logger: memoryLogger("warn").logger, host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    for (const browser of browsers) await browser.close();
    await dashboard?.close();
    await (await producer?.queue("invoice-totals"))?.obliterate({ force: true });
    await producer?.close();
    await db?.drop();
  });

  it("shows a viewer every page without a retry button, and answers its POST with 403", async () => {
    const page = await (await browserAs(viewer)).newPage();
    const failures = await page.goto(`${dashboard.url}/console/failures`);
    expect(failures?.status()).toBe(200);
    await groupRow(page, /RangeError/).waitFor({ state: "visible" });
    expect(
      await groupRow(page, /RangeError/)
        .locator("td.num")
        .first()
        .textContent(),
    ).toBe("3");
    expect(await page.getByRole("button", { name: "Retry this group" }).count()).toBe(0);
    await expect(page.locator("nav .who").textContent()).resolves.toBe("victor (viewer)");
    await shoot(page, "failures-viewer");

    const fingerprint = (await groupRow(page, /RangeError/).getAttribute("data-fingerprint")) as string;
    const post = await page.request.post(`${dashboard.url}/console/failures/retry`, { form: { queue: "invoice-totals", fingerprint } });
    expect(post.status()).toBe(403);

    // bull-board, read-only: the failed jobs are listed, with no retry control on them.
    await page.goto(`${dashboard.url}/queue/invoice-totals?status=failed`);
    await page
      .getByText(/lines over the limit/)
      .first()
      .waitFor({ state: "visible", timeout: 30_000 });
    expect(await page.locator('[class*="jobActions"]').locator("button:has(svg.lucide-refresh-cw)").count()).toBe(0);
    await shoot(page, "board-viewer");
    expect(await Promise.all(failed.rangeErrors.map(stateOf))).toEqual(["failed", "failed", "failed"]);
  });

  it("refuses an operator's form stripped of its CSRF token, and retries the group with it", async () => {
    const page = await (await browserAs(operator)).newPage();
    await page.goto(`${dashboard.url}/console/failures`);
    await groupRow(page, /RangeError/).waitFor({ state: "visible" });
    await shoot(page, "failures-operator");

    // The same form a forged cross-site post would be: no token.
    const refusedRow = groupRow(page, /refused/);
    await refusedRow.locator('input[name="_csrf"]').evaluate((input) => input.remove());
    const forged = page.waitForResponse((response) => response.url().endsWith("/console/failures/retry"));
    await refusedRow.getByRole("button", { name: "Retry this group" }).click();
    expect((await forged).status()).toBe(403);
    expect(await Promise.all(failed.refused.map(stateOf))).toEqual(["failed", "failed"]);

    await page.goto(`${dashboard.url}/console/failures`);
    await groupRow(page, /RangeError/)
      .getByRole("button", { name: "Retry this group" })
      .click();
    await page.getByRole("status").filter({ hasText: "Retried 3 job(s)" }).waitFor({ state: "visible" });
    expect(await Promise.all(failed.rangeErrors.map(stateOf))).toEqual(["waiting", "waiting", "waiting"]);
    expect(await Promise.all(failed.refused.map(stateOf))).toEqual(["failed", "failed"]);
    expect(await groupRow(page, /RangeError/).count()).toBe(0);
    await shoot(page, "failures-after-retry");
  });

  it("renders the Schedules, Database and bull-board pages, and nothing the browser asked for left 127.0.0.1", async () => {
    const page = await (await browserAs(operator)).newPage();
    await page.goto(`${dashboard.url}/console/schedules`);
    await page.getByRole("cell", { name: "partition-maintenance-daily" }).waitFor({ state: "visible" });
    await shoot(page, "schedules");
    await page.goto(`${dashboard.url}/console/database`);
    await page.getByText("transactions_default").first().waitFor({ state: "visible" });
    await shoot(page, "database");
    await page.goto(`${dashboard.url}/`);
    await page.getByText("invoice-totals", { exact: true }).first().waitFor({ state: "visible", timeout: 30_000 });
    await page.getByText("Loading...").waitFor({ state: "detached", timeout: 30_000 });
    // The console's pages are linked from bull-board's header menu.
    expect(await page.content()).not.toContain("fonts.googleapis.com");
    await shoot(page, "board-operator");

    expect(requested.length).toBeGreaterThan(10);
    expect(outside).toEqual([]);
    expect(requested.filter((url) => new URL(url).hostname !== "127.0.0.1")).toEqual([]);
  });
});
