import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { PayloadValidationError, UnknownQueueError } from "../src/lib/errors.js";
import { getContract } from "../src/queues/contracts.js";
import { Producer } from "../src/queues/producer.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig, testPrefix, testRedis, testRedisUrl } from "./support/test-env.js";

/** Every key under a prefix: if validation works, a rejected enqueue leaves none. */
async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  return redis.keys(`${prefix}:*`);
}

/** Jobs of invoice-totals in the config's queue store, whichever backend it is (the CLI tests below run on both). */
async function queuedJobs(config: Config): Promise<number> {
  const producer = Producer.fromConfig(config);
  try {
    const counts = await (await producer.queue("invoice-totals")).getJobCounts();
    return Object.values(counts).reduce((sum, count) => sum + count, 0);
  } finally {
    await producer.close();
  }
}

describe("the producer rejects bad payloads before Redis", () => {
  let redis: Redis;
  let prefix: string;
  let producer: Producer;

  beforeAll(() => {
    redis = testRedis();
  });
  afterAll(async () => {
    redis.disconnect();
  });

  const setUp = () => {
    prefix = testPrefix();
    producer = new Producer({ redisUrl: testRedisUrl(), prefix });
    return producer;
  };

  async function rejection(payload: unknown): Promise<PayloadValidationError> {
    const error = await producer.enqueueUnknown("invoice-totals", payload).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(PayloadValidationError);
    return error as PayloadValidationError;
  }

  it.each([
    { label: "an empty invoiceIds", payload: { invoiceIds: [] }, fields: ["invoiceIds"], text: /invoiceIds: .*>=1/ },
    {
      label: "an invoice id that is not a uuid",
      payload: { invoiceIds: [randomUUID(), "INV-42"] },
      fields: ["invoiceIds.1"],
      text: /invoiceIds\.1: must be an invoice id \(uuid\)/,
    },
    {
      label: "two modes at once",
      payload: { invoiceIds: [randomUUID()], all: true },
      fields: ["invoiceIds"],
      text: /exactly one of invoiceIds, changedSince or all/,
    },
    { label: "no mode at all", payload: {}, fields: ["invoiceIds"], text: /exactly one of invoiceIds, changedSince or all/ },
    { label: "an unknown extra key", payload: { all: true, invoiceId: "x" }, fields: ["invoiceId"], text: /invoiceId: unknown field; remove it/ },
    {
      label: "changedSince that is not a date-time",
      payload: { changedSince: "yesterday" },
      fields: ["changedSince"],
      text: /changedSince: must be an ISO 8601 date-time/,
    },
    { label: "all: false", payload: { all: false }, fields: ["all"], text: /all: must be true when given/ },
    { label: "a payload that is not an object", payload: "all", fields: [""], text: /expected object/ },
  ])("rejects $label, naming the field, and enqueues nothing", async ({ payload, fields, text }) => {
    setUp();
    try {
      const error = await rejection(payload);
      expect(error.fields.map((field) => field.path)).toEqual(fields);
      expect(error.message).toMatch(text);
      expect(error.message).toContain('queue "invoice-totals"');
      expect(await (await producer.queue("invoice-totals")).getJobCounts()).toEqual(
        expect.objectContaining({ waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0, prioritized: 0 }),
      );
    } finally {
      await producer.close();
    }
  });

  it("names every bad field when there are several", async () => {
    setUp();
    try {
      const error = await rejection({ invoiceIds: ["nope", randomUUID(), "also-nope"], chunkSize: 0 });
      expect(error.fields.map((field) => field.path).sort()).toEqual(["chunkSize", "invoiceIds.0", "invoiceIds.2"]);
      for (const path of ["invoiceIds.0", "invoiceIds.2", "chunkSize"]) expect(error.message).toContain(`${path}:`);
    } finally {
      await producer.close();
    }
    // Nothing at all was written under this prefix, not even queue metadata.
    expect(await keysUnder(redis, prefix)).toEqual([]);
  });

  it("accepts a good payload and adds exactly one job", async () => {
    setUp();
    try {
      const job = await producer.enqueue("invoice-totals", { all: true });
      expect(job.id).toBeTruthy();
      expect(job.data).toEqual({ all: true });
      const counts = await (await producer.queue("invoice-totals")).getJobCounts("waiting", "delayed", "prioritized");
      expect((counts.waiting ?? 0) + (counts.delayed ?? 0) + (counts.prioritized ?? 0)).toBe(1);
      // The contract's job options reach Redis with the job.
      expect(job.opts.attempts).toBe(getContract("invoice-totals").jobOptions.attempts);
    } finally {
      await (await producer.queue("invoice-totals")).obliterate({ force: true });
      await producer.close();
    }
  });

  it("refuses an unknown queue, listing the known ones", async () => {
    setUp();
    try {
      const error = await producer.enqueueUnknown("invoice-total", { all: true }).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(UnknownQueueError);
      expect((error as Error).message).toMatch(/Unknown queue "invoice-total"\. Known queues: .*invoice-totals/);
    } finally {
      await producer.close();
    }
    expect(await keysUnder(redis, prefix)).toEqual([]);
  });
});

describe("dbjobs enqueue rejects bad payloads", () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it("exits non-zero on invoiceIds: [], names the field, and enqueues nothing", async () => {
    const config = testConfig(database.url);
    const result = await runCli(["enqueue", "invoice-totals", "--data", '{"invoiceIds":[]}'], cliEnv(config));
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/Invalid payload for queue "invoice-totals": invoiceIds: /);
    expect(result.stdout).not.toMatch(/enqueued/);
    expect(await queuedJobs(config)).toBe(0);
  });

  it("exits non-zero on JSON that does not parse, saying how to pass it", async () => {
    const config = testConfig(database.url);
    const result = await runCli(["enqueue", "invoice-totals", "--data", "{all:true}"], cliEnv(config));
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/--data is not valid JSON/);
    expect(await queuedJobs(config)).toBe(0);
  });

  it("exits non-zero on a --timeout that is not a whole number of milliseconds, and enqueues nothing", async () => {
    const config = testConfig(database.url);
    for (const timeout of ["abc", "0", "9999999999"]) {
      const result = await runCli(["enqueue", "invoice-totals", "--data", '{"all":true}', "--wait", "--timeout", timeout], cliEnv(config));
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/--timeout .*use a whole number of milliseconds from 1 to 2147483647/);
    }
    expect(await queuedJobs(config)).toBe(0);
  });
});
