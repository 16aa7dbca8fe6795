import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { QueueBackendUnavailableError } from "../src/lib/errors.js";
import { Producer } from "../src/queues/producer.js";
import { deadPort, forwardPort, hostPort } from "./support/dead-port.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig, testRedisUrl } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

const password = "pr0ducer-s3cret-pw";
const connectTimeoutMs = 1000;
const invoiceId = "0b6f7c1e-3f7a-4c1e-9d2a-5e8b7c6d4f21";
// Timers run late on a busy two-core machine; an outage that hung would take far longer.
const marginMs = 750;

type Backend = "redis" | "postgres";

const expected = {
  redis: { service: /Cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+/, setting: "set REDIS_URL" },
  postgres: {
    service: /Cannot reach PostgreSQL at postgresql:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\//,
    setting: "set QUEUE_DATABASE_URL (or DIRECT_DATABASE_URL, else DATABASE_URL)",
  },
} as const;

/** The test's config with the queue store of `backend` at a dead port, its URL carrying a password. */
function storeDownConfig(backend: Backend, databaseUrl: string, port: number): Config {
  const queueDatabase = new URL(databaseUrl);
  queueDatabase.port = String(port);
  queueDatabase.password = password;
  return testConfig(databaseUrl, {
    QUEUE_BACKEND: backend,
    QUEUE_CONNECT_TIMEOUT_MS: String(connectTimeoutMs),
    ...(backend === "redis" ? { REDIS_URL: `redis://:${password}@127.0.0.1:${port}` } : { QUEUE_DATABASE_URL: queueDatabase.toString() }),
  });
}

/** Where the store of `backend` really is, for bringing the dead port back to life. */
function realStore(backend: Backend, databaseUrl: string) {
  return backend === "redis" ? hostPort(testRedisUrl(), 6379) : hostPort(databaseUrl, 5432);
}

describe.each(["redis", "postgres"] as const)("producers with the queue store down (QUEUE_BACKEND=%s)", (backend) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it("Producer.enqueue fails within QUEUE_CONNECT_TIMEOUT_MS with one masked line, and nothing lands once the store is back", async () => {
    const port = await deadPort();
    const { logger, lines } = memoryLogger("info");
    const producer = Producer.fromConfig(storeDownConfig(backend, database.url, port), logger);
    let forward: Awaited<ReturnType<typeof forwardPort>> | undefined;
    try {
      const started = performance.now();
      const failure = await producer.enqueue("invoice-totals", { invoiceIds: [invoiceId] }).catch((err: unknown) => err);
      const elapsedMs = performance.now() - started;

      expect(failure).toBeInstanceOf(QueueBackendUnavailableError);
      const message = (failure as Error).message;
      expect(message).toMatch(expected[backend].service);
      expect(message).toContain(expected[backend].setting);
      expect(message).not.toContain(password);
      expect(message).not.toContain("\n");
      expect((failure as QueueBackendUnavailableError).reasonCode).toBe("ECONNREFUSED");
      expect(elapsedMs).toBeLessThan(connectTimeoutMs + marginMs);

      // The producer's log: the outage in one structured line, with its code, no stack, no password.
      const warnings = lines().filter((line) => Number(line.level) >= 40);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ code: "ECONNREFUSED" });
      expect(JSON.stringify(lines())).not.toMatch(new RegExp(`${password}|"stack"`));

      // The store comes back: a refused job must not arrive late (no offline queue, no retried add).
      forward = await forwardPort(port, realStore(backend, database.url));
      await waitFor(
        "the producer to reconnect",
        () =>
          producer.ready().then(
            () => true,
            () => false,
          ),
        20_000,
        200,
      );
      const queue = await producer.queue("invoice-totals");
      await new Promise((resolve) => setTimeout(resolve, 500));
      const total = async () => Object.values(await queue.getJobCounts()).reduce((sum, count) => sum + count, 0);
      expect(await total()).toBe(0);
      // And the same producer works now, so the count above could have seen a job.
      await producer.enqueue("invoice-totals", { all: true });
      expect(await total()).toBe(1);
    } finally {
      await producer.close();
      await forward?.close();
    }
  }, 180_000);

  it("`dbjobs enqueue` exits 2 within QUEUE_CONNECT_TIMEOUT_MS, printing one line that names the service and the setting, password masked", async () => {
    const port = await deadPort();
    const config = storeDownConfig(backend, database.url, port);
    const env = cliEnv(config, { LOG_FORMAT: "json" });
    // The CLI's own start-up (tsx, imports) is measured apart, in a run beside it so both meet the same load:
    // an unknown queue fails right after start-up.
    const timed = async (args: string[]) => {
      const started = performance.now();
      const result = await runCli(args, env);
      return { ...result, elapsedMs: performance.now() - started };
    };
    const [baseline, { code, stdout, stderr, elapsedMs }] = await Promise.all([
      timed(["enqueue", "no-such-queue", "--data", "{}"]),
      timed(["enqueue", "invoice-totals", "--data", JSON.stringify({ invoiceIds: [invoiceId] })]),
    ]);
    expect(baseline.stderr).toMatch(/Unknown queue "no-such-queue"/);

    expect(code).toBe(2);
    expect(stdout).toBe("");
    const printed = stderr.trim().split("\n");
    expect(printed).toHaveLength(1);
    expect(printed[0]).toMatch(/^dbjobs: /);
    expect(printed[0]).toMatch(expected[backend].service);
    expect(printed[0]).toContain(expected[backend].setting);
    expect(stderr).not.toContain(password);
    expect(stderr).not.toMatch(/^\s+at /m);
    // Start-up varies between two runs on a loaded machine; a CLI that hung would blow far past this.
    expect(elapsedMs - baseline.elapsedMs).toBeLessThan(connectTimeoutMs + 3000);

    // A bad payload is still reported as such: the store is not what the user must fix first.
    const bad = await runCli(["enqueue", "invoice-totals", "--data", '{"invoiceIds":["inv-1"]}'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invoiceIds\.0: must be an invoice id/);
    expect(bad.stderr).not.toMatch(/Cannot reach/);
  }, 180_000);
});
