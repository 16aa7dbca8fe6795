import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboard } from "../src/dashboard/server.js";
import { queueStoreOptions } from "../src/lib/config.js";
import { packageRoot } from "../src/lib/paths.js";
import { type AnyQueue, createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import { startWorker } from "../src/queues/start-worker.js";
import { browserSkipReason, launchBrowser, type TestBrowser } from "./support/browser.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";

/**
 * An operator's session in a real browser: Debian's Chromium logs in with
 * basic auth, sees every queue, retries a job that a real worker failed, and
 * a screenshot of the board is kept in test-artifacts/dashboard.png.
 */
const skipReason = browserSkipReason();
if (skipReason) console.warn(skipReason);

const user = "operator";
const password = "browser-test-password";
const screenshotPath = join(packageRoot, "test-artifacts", "dashboard.png");

async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 45_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(value)})`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe.skipIf(skipReason !== undefined)("the dashboard in headless Chromium", () => {
  let db: TestDatabase;
  let store: QueueStore;
  let queue: AnyQueue;
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  let browser: TestBrowser | undefined;
  let config: ReturnType<typeof testConfig>;

  beforeAll(async () => {
    db = await createTestDatabase();
    config = testConfig(db.url, { DASHBOARD_USER: user, DASHBOARD_PASSWORD: password });
    store = createQueueStore({ ...queueStoreOptions(config), role: "producer" });
    queue = await store.queue("invoice-totals");
    dashboard = await startDashboard({ config, logger: memoryLogger("warn").logger, host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    await browser?.close();
    await dashboard?.close();
    await queue?.close();
    await store?.close();
    await db?.drop();
  });

  it("is refused without credentials", async () => {
    browser = await launchBrowser();
    const page = await browser.context.newPage();
    // Headless Chromium cannot show the login prompt a 401 challenge asks for, so it abandons the page.
    await expect(page.goto(`${dashboard.url}/`, { waitUntil: "domcontentloaded" })).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
    expect((await browser.context.request.get(`${dashboard.url}/`)).status()).toBe(401);
    await browser.close();
    browser = undefined;
  });

  it("logs in, shows the queues, and retries a failed job from the UI", async () => {
    // A real worker fails a job whose payload the producer would have refused (slipped in through raw BullMQ).
    const worker = await startWorker("invoice-totals", { config, logger: memoryLogger("silent").logger });
    const job = await queue.add("invoice-totals", { invoiceIds: "not-a-list" });
    const jobId = job.id as string;
    try {
      await waitFor(
        () => queue.getJobState(jobId),
        (state) => state === "failed",
        "the worker to fail the job",
      );
    } finally {
      // Without a worker the retried job stays visibly "waiting" instead of failing again at once.
      await worker.close();
    }
    const failedBefore = await queue.getJob(jobId);
    expect(failedBefore?.failedReason).toMatch(/Invalid payload for queue "invoice-totals": invoiceIds/);

    browser = await launchBrowser({ httpCredentials: { username: user, password }, viewport: { width: 1440, height: 900 } });
    const page = await browser.context.newPage();
    const entry = await page.goto(`${dashboard.url}/`, { waitUntil: "domcontentloaded" });
    expect(entry?.status()).toBe(200);
    for (const name of ["invoice-totals", "bulk-messaging", "transaction-retry"]) {
      await page.getByText(name, { exact: true }).first().waitFor({ state: "visible", timeout: 30_000 });
    }

    await page.goto(`${dashboard.url}/queue/invoice-totals?status=failed`, { waitUntil: "domcontentloaded" });
    await page
      .getByText(/Invalid payload for queue "invoice-totals"/)
      .first()
      .waitFor({ state: "visible", timeout: 30_000 });
    await mkdir(join(packageRoot, "test-artifacts"), { recursive: true });
    await page.screenshot({ path: screenshotPath, fullPage: true });

    const retryCall = page.waitForResponse(
      (response) => response.url().endsWith(`/api/queues/invoice-totals/${jobId}/retry`) && response.request().method() === "PUT",
      { timeout: 30_000 },
    );
    // The job card's own retry icon (not the list's "Retry all"), then bull-board's confirmation dialog.
    await page.locator('[class*="jobActions"]').locator("button:has(svg.lucide-refresh-cw)").click();
    await page.getByRole("button", { name: "Confirm", exact: true }).click({ timeout: 30_000 });
    expect((await retryCall).status()).toBeLessThan(300);

    await waitFor(
      () => queue.getJobState(jobId),
      (state) => state === "waiting",
      "the retried job to be waiting again",
    );
    const retried = await queue.getJob(jobId);
    expect(retried?.failedReason ?? "").toBe("");
    // The page follows: the failed list empties.
    await page
      .getByText(/Invalid payload for queue "invoice-totals"/)
      .first()
      .waitFor({ state: "detached", timeout: 30_000 });
  });
});
