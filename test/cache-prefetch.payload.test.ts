import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { PayloadValidationError } from "../src/lib/errors.js";
import { Producer } from "../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig } from "./support/test-env.js";

describe("cache-prefetch payload validation", () => {
  let database: TestDatabase;
  let config: Config;
  let producer: Producer;

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
    producer = Producer.fromConfig(config);
  });

  afterAll(async () => {
    const queue = await producer?.queue("cache-prefetch");
    await queue?.obliterate({ force: true });
    await producer?.close();
    await database?.drop();
  });

  it.each([
    { payload: { limit: 0 }, field: "limit", text: /limit: must be a whole number from 1 to 100000/ },
    { payload: { limit: 100_001 }, field: "limit", text: /limit: must be a whole number from 1 to 100000/ },
    { payload: { limit: 2.5 }, field: "limit", text: /limit: / },
    { payload: { limit: "10" }, field: "limit", text: /limit: must be a whole number from 1 to 100000/ },
    { payload: { kinds: ["escrowBalances", "balances"] }, field: "kinds.1", text: /kinds\.1: must be one of escrowBalances, activeUsers, globalCounts/ },
    { payload: { kinds: [] }, field: "kinds", text: /kinds: give at least one kind/ },
    { payload: { kind: "activeUsers" }, field: "kind", text: /kind: unknown field; remove it/ },
  ])("rejects $payload naming $field, and nothing reaches the queue", async ({ payload, field, text }) => {
    const error = await producer.enqueueUnknown("cache-prefetch", payload).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(PayloadValidationError);
    expect((error as PayloadValidationError).fields.map((entry) => entry.path)).toEqual([field]);
    expect((error as Error).message).toMatch(text);
    const counts = await (await producer.queue("cache-prefetch")).getJobCounts();
    expect(Object.values(counts).reduce((sum, count) => sum + count, 0)).toBe(0);
  });

  it("fails a bad payload that reached the queue anyway at once, without retries, naming the field", async () => {
    let worker: RunningWorker | undefined;
    // Straight through BullMQ, past the producer's validation, as a producer in another language could.
    const queue = await producer.queue("cache-prefetch");
    try {
      const job = await queue.add("cache-prefetch", { limit: -3 }, { attempts: 3 });
      worker = await startWorker("cache-prefetch", { config, logger: memoryLogger("warn").logger });
      for (let waited = 0; (await job.getState()) !== "failed"; waited += 50) {
        if (waited > 30_000) throw new Error(`job still ${await job.getState()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const failed = await queue.getJob(job.id as string);
      expect(failed?.attemptsMade).toBe(1);
      expect(failed?.failedReason).toMatch(/limit: /);
    } finally {
      await worker?.close();
    }
  });
});
