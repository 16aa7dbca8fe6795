import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseLock } from "../src/queues/scheduler-lock.js";
import { testRedis } from "./support/test-env.js";

describe("LeaseLock.keepExtended", () => {
  let redis: Redis;
  const leaseMs = 1000;
  const workMs = 3000;

  beforeAll(() => {
    redis = testRedis();
  });
  afterAll(() => {
    redis?.disconnect();
  });

  it("keeps the lease through work that outlasts it, and stops extending once the work ends", async () => {
    const lock = new LeaseLock({ redis, key: `test:lease:${randomUUID()}`, leaseMs });
    expect(await lock.acquire()).toBe(true);

    const result = await lock.keepExtended(async () => {
      await sleep(workMs);
      return lock.holder();
    });
    expect(result).toBe(lock.token);
    expect(await lock.holder()).toBe(lock.token);

    // With the work done nothing extends it any more, so it lapses for a standby.
    await sleep(leaseMs * 3);
    expect(await lock.holder()).toBeNull();
  });

  it("without it, the same work loses the lease (what the scheduler's registration risked)", async () => {
    const lock = new LeaseLock({ redis, key: `test:lease:${randomUUID()}`, leaseMs });
    expect(await lock.acquire()).toBe(true);
    await sleep(workMs);
    expect(await lock.holder()).toBeNull();
    expect(await lock.extend()).toBe(false);
  });
});
