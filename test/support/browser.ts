import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, type BrowserContextOptions, chromium } from "playwright-core";

/**
 * Debian's Chromium driven by playwright-core (no browser download). The
 * flags keep Chromium from reaching for the network at start-up, which stalls
 * it on a machine without internet access.
 */
export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Why the browser tests cannot run here, or undefined when they can (always, under CI: a missing browser must fail there). */
export function browserSkipReason(): string | undefined {
  if (existsSync(chromiumPath) || process.env.CI) return undefined;
  return `skipping browser tests: no Chromium at ${chromiumPath}. Install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH.`;
}

const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** A fresh browser profile (its own user-data dir), removed on close. */
export async function launchBrowser(options: BrowserContextOptions = {}): Promise<TestBrowser> {
  const userDataDir = await mkdtemp(join(tmpdir(), "dbjobs-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: chromiumArgs,
    timeout: 60_000,
    ...options,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
