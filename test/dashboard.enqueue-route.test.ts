import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboard } from "../src/dashboard/server.js";
import { queueStoreOptions } from "../src/lib/config.js";
import { type AnyQueue, createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";

const user = "producer-app";
const password = "enqueue-secret-password";
const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("POST /queues/<queue>/jobs", () => {
  let db: TestDatabase;
  let store: QueueStore;
  let queue: AnyQueue;
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;

  beforeAll(async () => {
    db = await createTestDatabase();
    const config = testConfig(db.url, { DASHBOARD_USER: user, DASHBOARD_PASSWORD: password });
    store = createQueueStore({ ...queueStoreOptions(config), role: "producer" });
    queue = await store.queue("invoice-totals");
    dashboard = await startDashboard({ config, logger: memoryLogger("warn").logger, host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    await dashboard?.close();
    await queue?.close();
    await store?.close();
    await db?.drop();
  });

  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${dashboard.url}${path}`, { method: "POST", headers: { authorization, "content-type": "application/json", ...headers }, body });

  async function jobsInRedis(): Promise<number> {
    const counts = await queue.getJobCounts("waiting", "delayed", "prioritized", "active", "completed", "failed");
    return Object.values(counts).reduce((sum, count) => sum + (count ?? 0), 0);
  }

  it("answers 201 with the job id, and the job is in the queue with the payload as sent", async () => {
    const before = await jobsInRedis();
    const response = await post("/queues/invoice-totals/jobs", JSON.stringify({ changedSince: "2026-01-31T00:00:00Z" }));
    expect(response.status).toBe(201);
    const body = (await response.json()) as { id: string; queue: string };
    expect(body.queue).toBe("invoice-totals");
    const job = await queue.getJob(body.id);
    expect(job?.data).toEqual({ changedSince: "2026-01-31T00:00:00Z" });
    expect(await jobsInRedis()).toBe(before + 1);
  });

  it("answers 400 naming each bad field, and enqueues nothing", async () => {
    const before = await jobsInRedis();
    const response = await post("/queues/invoice-totals/jobs", JSON.stringify({ invoiceIds: [randomUUID(), "INV-42"], chunkSize: -5 }));
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: string; fields: { path: string; message: string }[] };
    expect(body.fields.map((field) => field.path).sort()).toEqual(["chunkSize", "invoiceIds.1"]);
    expect(body.fields.find((field) => field.path === "invoiceIds.1")?.message).toMatch(/uuid/);
    expect(body.error).toMatch(/Fix these fields/);
    expect(await jobsInRedis()).toBe(before);
  });

  it("answers 400 to malformed JSON and to bad query options, and enqueues nothing", async () => {
    const before = await jobsInRedis();
    const malformed = await post("/queues/invoice-totals/jobs", '{"all": tru');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: string }).error).toMatch(/not valid JSON/);
    const badOption = await post("/queues/invoice-totals/jobs?delayMs=soon", JSON.stringify({ all: true }));
    expect(badOption.status).toBe(400);
    expect(((await badOption.json()) as { fields: { path: string }[] }).fields.map((field) => field.path)).toEqual(["query.delayMs"]);
    expect(await jobsInRedis()).toBe(before);
  });

  it("answers 404 to an unknown queue", async () => {
    const response = await post("/queues/no-such-queue/jobs", JSON.stringify({ all: true }));
    expect(response.status).toBe(404);
    const body = (await response.json()) as { error: string; code: string };
    expect(body.code).toBe("DBJOBS_UNKNOWN_QUEUE");
    expect(body.error).toMatch(/Known queues: .*invoice-totals/);
  });

  it("answers 413 to a body over the 1 MB limit, even a valid one, and enqueues nothing", async () => {
    const before = await jobsInRedis();
    // Valid JSON and a valid payload, padded past the limit: only the size can refuse it.
    const response = await post("/queues/invoice-totals/jobs", `{"all": true${" ".repeat(1_100_000)}}`);
    expect(response.status).toBe(413);
    expect(((await response.json()) as { error: string }).error).toMatch(/larger than 1mb/);
    expect(await jobsInRedis()).toBe(before);
    const small = await post("/queues/invoice-totals/jobs", `{"all": true${" ".repeat(1000)}}`);
    expect(small.status).toBe(201);
  });

  it("answers 415 to a body that is not JSON", async () => {
    const response = await post("/queues/invoice-totals/jobs", "all=true", { "content-type": "application/x-www-form-urlencoded" });
    expect(response.status).toBe(415);
  });

  it("answers 401 without credentials, and enqueues nothing", async () => {
    const before = await jobsInRedis();
    const response = await fetch(`${dashboard.url}/queues/invoice-totals/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ all: true }),
    });
    expect(response.status).toBe(401);
    expect(await jobsInRedis()).toBe(before);
  });

  it("keeps one job when a client retries with the same jobId", async () => {
    const before = await jobsInRedis();
    const first = await post("/queues/invoice-totals/jobs?jobId=order-7-totals", JSON.stringify({ all: true }));
    const second = await post("/queues/invoice-totals/jobs?jobId=order-7-totals", JSON.stringify({ all: true }));
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(((await first.json()) as { id: string }).id).toBe("order-7-totals");
    expect(((await second.json()) as { id: string }).id).toBe("order-7-totals");
    expect(await jobsInRedis()).toBe(before + 1);
  });
});
