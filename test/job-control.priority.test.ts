import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { InvalidJobOptionError } from "../src/queues/job-options.js";
import { Producer } from "../src/queues/producer.js";
import { startWorker } from "../src/queues/start-worker.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { memoryLogger, testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/** A job enqueued later with a higher priority (1) runs before earlier ones of priority 5; bad priorities are refused by name. */
describe("priority: an enqueue option of the producer and the CLI", () => {
  const testDatabase = useTestDb();
  let config: Config;
  let producer: Producer;

  beforeAll(() => {
    config = testConfig(testDatabase.url);
    producer = Producer.fromConfig(config);
  });
  afterAll(async () => {
    await producer.close();
  });

  it("a later job with priority 1 overtakes earlier ones with priority 5", { timeout: 120_000 }, async () => {
    // Enqueued with no worker running, so the order they run in is the queue's alone.
    const low1 = await producer.enqueue("transaction-retry", {}, { priority: 5 });
    const low2 = await producer.enqueue("transaction-retry", {}, { priority: 5 });
    const cli = await runCli(["enqueue", "transaction-retry", "--priority", "1", "--json"], cliEnv(config));
    expect(cli.code).toBe(0);
    const high = (JSON.parse(cli.stdout) as { jobId: string }).jobId;

    const worker = await startWorker("transaction-retry", { config, logger: memoryLogger("warn").logger, concurrency: 1 });
    const order: string[] = [];
    worker.worker.on("completed", (job) => order.push(String(job.id)));
    try {
      await waitFor("all three jobs to complete", async () => order.length === 3, 60_000);
    } finally {
      await worker.close();
    }
    expect(order).toEqual([high, String(low1.id), String(low2.id)]);
  });

  it("refuses a priority out of range, naming the option and its range, and enqueues nothing", async () => {
    const queue = await producer.queue("transaction-retry");
    const before = await queue.getJobCountByTypes("waiting", "prioritized", "delayed");
    await expect(producer.enqueue("transaction-retry", {}, { priority: 0 })).rejects.toThrow(InvalidJobOptionError);
    await expect(producer.enqueue("transaction-retry", {}, { priority: 3_000_000 })).rejects.toThrow(
      /Invalid job option priority: 3000000 is not a whole number from 1 \(highest\) to 2097152/,
    );
    const cli = await runCli(["enqueue", "transaction-retry", "--priority", "high"], cliEnv(config));
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(/Invalid job option priority: "high" is not a whole number\. Nothing was enqueued\./);
    expect(await queue.getJobCountByTypes("waiting", "prioritized", "delayed")).toBe(before);
  });
});
