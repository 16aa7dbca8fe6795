import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { Job } from "bullmq";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { queueStoreOptions } from "../src/lib/config.js";
import { createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import { testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * On BullMQ's PostgreSQL backend, close() ends the worker's blocking wait with
 * "check now", after which BullMQ makes one more claim. These tests hold that
 * claim at a lock of the backend's own: with a global concurrency set, every
 * claim (move_to_active) first takes the transaction advisory lock
 * hashtext('bullmq:concurrency:' || queue). The test holds it at session level,
 * so a claim that starts waits there until the test lets it go.
 */
describe("a closing worker on the PostgreSQL backend", () => {
  const testDatabase = useTestDb();
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  /** A worker (concurrency 2) whose job `a` runs until released, blocked in its wait for a second job. */
  async function workerWithJobInFlight() {
    const name = `closing-${randomUUID()}`;
    const store: QueueStore = createQueueStore({ ...queueStoreOptions(testConfig(testDatabase.url)), role: "worker", poolSize: 6 });
    const queue = await store.queue(name);
    await queue.setGlobalConcurrency(10);
    const lock = new pg.Client({ connectionString: testDatabase.url });
    await lock.connect();
    let releaseA = () => {};
    const aHeld = new Promise<void>((resolve) => {
      releaseA = resolve;
    });
    const started: string[] = [];
    const worker = await store.worker(
      name,
      async (job: Job) => {
        started.push(job.name);
        if (job.name === "a") await aHeld;
        return {};
      },
      { concurrency: 2 },
    );
    cleanups.push(async () => {
      releaseA();
      await lock.end();
      await worker.close(true);
      await queue.obliterate({ force: true });
      await queue.close();
      await store.close();
    });
    // The empty queue's first claim, then a's claim and the empty one after it: from then on the worker waits.
    await once(worker, "drained");
    const drainedAgain = once(worker, "drained");
    await queue.add("a", {});
    await drainedAgain;
    await waitFor("job a to start", async () => started.includes("a"));
    const key = `bullmq:concurrency:${name}`;
    const holdClaims = () => lock.query("SELECT pg_advisory_lock(hashtext($1))", [key]);
    const letClaimsGo = () => lock.query("SELECT pg_advisory_unlock(hashtext($1))", [key]);
    const claimWaiting = async () => {
      const { rows } = await lock.query<{ waiting: number }>(
        "SELECT count(*)::int AS waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
      );
      return (rows[0]?.waiting ?? 0) > 0;
    };
    return { queue, worker, started, releaseA, holdClaims, letClaimsGo, claimWaiting };
  }

  it("makes no claim once close() has begun: a job added meanwhile stays waiting", async () => {
    const { queue, worker, started, releaseA, holdClaims, letClaimsGo, claimWaiting } = await workerWithJobInFlight();
    await holdClaims();

    const closed = worker.close();
    await worker.whenClaimsSettled();
    const b = await queue.add("b", {});
    // Plain BullMQ would now be claiming, held at the lock, and take b once it is let go.
    await sleep(500);
    expect(await claimWaiting()).toBe(false);
    await letClaimsGo();
    await sleep(300);
    releaseA();
    await closed;

    expect(started).toEqual(["a"]);
    expect(await queue.getJobState(b.id as string)).toBe("waiting");
  });

  it("whenClaimsSettled waits for a claim begun before close(), whose job is then run in the drain", async () => {
    const { queue, worker, started, releaseA, holdClaims, letClaimsGo, claimWaiting } = await workerWithJobInFlight();
    await holdClaims();
    const b = await queue.add("b", {});
    await waitFor("the worker's claim to wait at the lock", claimWaiting);

    const closed = worker.close();
    let settled = false;
    const claimsSettled = worker.whenClaimsSettled().then(() => {
      settled = true;
    });
    await sleep(500);
    expect(settled).toBe(false);
    await letClaimsGo();
    await claimsSettled;
    await waitFor("job b to start", async () => started.includes("b"));
    releaseA();
    await closed;

    expect(started).toEqual(["a", "b"]);
    expect(await queue.getJobState(b.id as string)).toBe("completed");
  });
});
