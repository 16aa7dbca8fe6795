import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { Producer } from "../src/queues/producer.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { testConfig, useTestDb } from "./support/test-env.js";

/** `dbjobs enqueue --wait` that ends without the job's outcome says so, and never calls the job failed. */
describe("dbjobs enqueue --wait when no worker takes the job in time", () => {
  const testDatabase = useTestDb();
  let config: Config;

  beforeAll(() => {
    config = testConfig(testDatabase.url);
  });

  afterAll(async () => {
    const producer = Producer.fromConfig(config);
    await (await producer.queue("invoice-totals")).obliterate({ force: true });
    await producer.close();
  });

  it("exits 1 naming the timeout, as text and as JSON, and the job still waits for a worker", async () => {
    const text = await runCli(["enqueue", "invoice-totals", "--data", '{"all":true}', "--wait", "--timeout", "1500"], cliEnv(config));
    expect(text.code).toBe(1);
    expect(text.stderr).toMatch(/^job \S+ did not finish within 1500 ms$/m);
    expect(text.stderr).not.toMatch(/failed/);

    const json = await runCli(["enqueue", "invoice-totals", "--data", '{"all":true}', "--wait", "--timeout", "1500", "--json"], cliEnv(config));
    expect(json.code).toBe(1);
    const printed = JSON.parse(json.stdout) as { jobId: string; state: string; error: string };
    expect(printed).toMatchObject({ queue: "invoice-totals", state: "timeout", error: `job ${printed.jobId} did not finish within 1500 ms` });

    const producer = Producer.fromConfig(config);
    try {
      const job = await (await producer.queue("invoice-totals")).getJob(printed.jobId);
      expect(await job?.getState()).toBe("waiting");
    } finally {
      await producer.close();
    }
  });
});
