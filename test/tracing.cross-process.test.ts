import { execFile } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/lib/config.js";
import { packageRoot } from "../src/lib/paths.js";
import { Producer } from "../src/queues/producer.js";
import { ancestors, type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./support/otlp-receiver.js";
import { startRelay } from "./support/relay-process.js";
import { type CliRun, cliEnv, spawnCli } from "./support/spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

/**
 * One trace from a producer application's enqueue, in its own process, to
 * the `dbjobs worker` process's `process` span and the PostgreSQL statements
 * the job's handler runs under it. Both processes export OTLP/HTTP to a
 * receiver in this test, as they would to a Collector. Runs on each queue
 * backend; on Redis the transactional enqueue goes through `dbjobs relay`.
 */
const run = promisify(execFile);
const producerKind = 4;
const consumerKind = 5;

/** Runs test/support/traced-producer.ts in its own process; returns the id it enqueued. */
async function enqueueFromProducerProcess(env: Record<string, string>, mode: "plain" | "tx"): Promise<string> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", "test/support/traced-producer.ts", mode], {
    cwd: packageRoot,
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  const line = stdout.split("\n").find((text) => text.startsWith("ENQUEUED "));
  if (!line) throw new Error(`the producer printed no ENQUEUED line:\n${stdout}`);
  const enqueued = JSON.parse(line.slice("ENQUEUED ".length)) as { id: string; tracing: boolean };
  expect(enqueued.tracing).toBe(true);
  return enqueued.id;
}

/** The worker's `process` span of job `id`, once it and a statement under it have arrived. */
async function processSpanOf(receiver: OtlpReceiver, id: string): Promise<ReceivedSpan> {
  return waitFor(
    `the process span of job ${id}, with a pg statement under it`,
    async () => {
      const spans = receiver.spans();
      const processSpan = spans.find((span) => span.kind === consumerKind && span.name.startsWith("process ") && span.attributes["bullmq.job.id"] === id);
      if (!processSpan) return undefined;
      const statementUnder = spans.some((span) => span.name.startsWith("pg.query") && ancestors(span, spans).includes(processSpan));
      return statementUnder && processSpan;
    },
    30_000,
    100,
  );
}

/** What one trace holds: the producer's enqueue span, the worker's process span and the statements under it. */
function expectOneTraceAcrossProcesses(receiver: OtlpReceiver, processSpan: ReceivedSpan, options: { transactional: boolean }) {
  const trace = receiver.spans().filter((span) => span.traceId === processSpan.traceId);
  const chain = ancestors(processSpan, trace);
  // The enqueue span is the process span's ancestor (on Redis' outbox path, its parent: the relay adds the job with its context unchanged).
  const enqueueSpan = chain.find((span) => span.kind === producerKind && span.name === "add invoice-totals.invoice-totals");
  expect(enqueueSpan, `an enqueue span above the process span; chain: ${chain.map((span) => span.name).join(" <- ")}`).toBeDefined();
  expect(enqueueSpan?.resource["service.name"]).toBe("test-producer-app");
  expect(enqueueSpan?.attributes["dbjobs.enqueue.transactional"] === true).toBe(options.transactional);
  expect(processSpan.resource["service.name"]).toBe("dbjobs-worker");
  expect(processSpan.resource["process.pid"]).not.toBe(enqueueSpan?.resource["process.pid"]);
  // The statements under the process span ran in the worker process; among them the handler's own read of the invoices.
  const statements = trace.filter((span) => span.name.startsWith("pg.query") && ancestors(span, trace).includes(processSpan));
  expect(statements.length).toBeGreaterThan(0);
  expect(statements.every((span) => span.resource["service.name"] === "dbjobs-worker")).toBe(true);
  expect(statements.map((span) => String(span.attributes["db.statement"] ?? span.attributes["db.query.text"]))).toContainEqual(
    expect.stringMatching(/FROM "invoices"/),
  );
}

describe("traces across processes: producer → worker → PostgreSQL", () => {
  let database: TestDatabase;
  let config: Config;
  let receiver: OtlpReceiver;
  let worker: CliRun;
  let relay: CliRun | undefined;
  let tracedEnv: Record<string, string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
    receiver = await startOtlpReceiver();
    tracedEnv = cliEnv(config, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: "100" });
    worker = spawnCli(["worker", "invoice-totals"], tracedEnv);
    await worker.waitForOutput(/worker started/, 60_000);
    if (config.QUEUE_BACKEND === "redis")
      relay = await startRelay(config, [], { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: "100" });
  }, 120_000);

  afterAll(async () => {
    for (const child of [worker, relay]) {
      if (!child || child.child.exitCode !== null) continue;
      child.child.kill("SIGTERM");
      await child.exited;
    }
    await receiver?.close();
    await database?.drop();
  }, 60_000);

  it("producer.enqueue in one process and the job in the worker process share one trace, down to the handler's statements", async () => {
    const id = await enqueueFromProducerProcess(tracedEnv, "plain");
    const processSpan = await processSpanOf(receiver, id);
    expectOneTraceAcrossProcesses(receiver, processSpan, { transactional: false });
  }, 90_000);

  it("an enqueue in the application's transaction carries its trace to the worker too", async () => {
    const id = await enqueueFromProducerProcess(tracedEnv, "tx");
    const processSpan = await processSpanOf(receiver, id);
    expectOneTraceAcrossProcesses(receiver, processSpan, { transactional: true });
  }, 90_000);
});

describe("without OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  let database: TestDatabase;
  let receiver: OtlpReceiver;

  beforeAll(async () => {
    database = await createTestDatabase();
    receiver = await startOtlpReceiver();
  }, 60_000);

  afterAll(async () => {
    await receiver?.close();
    await database?.drop();
  });

  it("a worker runs its job and exports nothing, though the traces-only endpoint variable points at a receiver", async () => {
    const config = testConfig(database.url);
    // The exporter would honour OTEL_EXPORTER_OTLP_TRACES_ENDPOINT if it were loaded: dbjobs must not load it.
    const env = cliEnv(config, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/v1/traces`, OTEL_BSP_SCHEDULE_DELAY: "50" });
    const worker = spawnCli(["worker", "invoice-totals"], env);
    try {
      await worker.waitForOutput(/worker started/, 60_000);
      const { stdout } = await run(process.execPath, ["--import", "tsx", "test/support/traced-producer.ts", "plain"], {
        cwd: packageRoot,
        env: { ...process.env, ...env },
        timeout: 60_000,
      });
      const enqueued = JSON.parse(
        stdout
          .split("\n")
          .find((text) => text.startsWith("ENQUEUED "))
          ?.slice("ENQUEUED ".length) ?? "null",
      ) as {
        id: string;
        tracing: boolean;
      };
      expect(enqueued.tracing).toBe(false);
      const producer = Producer.fromConfig(config);
      try {
        const queue = await producer.queue("invoice-totals");
        await waitFor(`job ${enqueued.id} to complete`, async () => (await queue.getJob(enqueued.id))?.isCompleted(), 30_000, 100);
      } finally {
        await producer.close();
      }
      // Several export intervals pass: nothing may arrive.
      await sleep(500);
      expect(receiver.requests()).toBe(0);
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
    expect(receiver.requests()).toBe(0);
  }, 120_000);

  it("startTracing() loads no OpenTelemetry module and reports itself off; with the variable it loads them (so the check can see them)", async () => {
    const script = `const { startTracing } = await import("./src/index.ts"); const t = await startTracing(); console.log("ENABLED " + t.enabled); await t.shutdown(); await globalThis.reportLoadedModules();`;
    const loadedWith = async (endpoint: string | undefined) => {
      const env: Record<string, string | undefined> = { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint };
      if (endpoint === undefined) delete env.OTEL_EXPORTER_OTLP_ENDPOINT;
      const { stdout } = await run(
        process.execPath,
        ["--import", "./test/support/record-imports.mjs", "--import", "tsx", "--input-type=module", "-e", script],
        { cwd: packageRoot, env },
      );
      const loaded = JSON.parse(
        stdout
          .split("\n")
          .find((text) => text.startsWith("LOADED "))
          ?.slice("LOADED ".length) ?? "[]",
      ) as string[];
      return { enabled: stdout.includes("ENABLED true"), otel: loaded.filter((url) => /node_modules\/(@opentelemetry|bullmq-otel)\//.test(url)) };
    };
    const off = await loadedWith(undefined);
    expect(off.enabled).toBe(false);
    expect(off.otel).toEqual([]);
    const on = await loadedWith(receiver.endpoint);
    expect(on.enabled).toBe(true);
    expect(on.otel.length).toBeGreaterThan(0);
  }, 60_000);

  it("a bad endpoint stops the worker at start-up with an error naming the variable", async () => {
    const config = testConfig(database.url);
    const worker = spawnCli(["worker", "invoice-totals"], cliEnv(config, { OTEL_EXPORTER_OTLP_ENDPOINT: "127.0.0.1:4318" }));
    const { code } = await worker.exited;
    expect(code).toBe(2);
    expect(worker.stderr()).toMatch(/OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:\/\/ or https:\/\/ URL/);
  }, 60_000);
});
