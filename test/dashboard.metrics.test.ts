import type { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flushedMetricsRegistry } from "../src/dashboard/flushed-metrics.js";
import { startDashboard } from "../src/dashboard/server.js";
import { redisMetricsStore } from "../src/lib/metrics.js";
import type { AnyQueue } from "../src/lib/queue-store.js";
import { Producer } from "../src/queues/producer.js";
import { type RunningWorker, startWorker } from "../src/queues/start-worker.js";
import { createTestDatabase, memoryLogger, type TestDatabase, testConfig, testPrefix, testQueueBackend, testRedis } from "./support/test-env.js";

/**
 * A strict reader of the Prometheus text format 0.0.4: it throws on anything
 * Prometheus would reject or misread (a sample before its family's TYPE, a
 * family split in two, a histogram whose +Inf bucket is not its count,
 * buckets that decrease, a negative counter), so the tests below fail on a
 * malformed exposition, not just on a missing line.
 */
interface Exposition {
  types: Map<string, string>;
  samples: Map<string, number>;
}

const namePattern = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const sampleLine = new RegExp(
  `^(${namePattern})(\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*")*,?)?\\})? (-?[0-9.eE+-]+|NaN|\\+Inf|-Inf)$`,
);

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples = new Map<string, number>();
  const finished = new Set<string>();
  let current: string | undefined;
  const familyOf = (name: string) => {
    for (const suffix of ["_bucket", "_sum", "_count"]) {
      const base = name.slice(0, -suffix.length);
      if (name.endsWith(suffix) && (types.get(base) === "histogram" || types.get(base) === "summary")) return base;
    }
    return name;
  };
  const enter = (family: string, line: string) => {
    if (family !== current) {
      if (finished.has(family)) throw new Error(`family ${family} appears in two places: ${line}`);
      if (current) finished.add(current);
      current = family;
    }
  };
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (!new RegExp(`^${namePattern}$`).test(name)) throw new Error(`bad metric name: ${line}`);
      enter(name, line);
      if (kind === "TYPE") {
        if (types.has(name)) throw new Error(`second TYPE for ${name}`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) throw new Error(`bad type: ${line}`);
        types.set(name, rest);
      } else {
        if (helps.has(name)) throw new Error(`second HELP for ${name}`);
        helps.add(name);
      }
      continue;
    }
    if (line.startsWith("#")) continue;
    const match = sampleLine.exec(line);
    if (!match) throw new Error(`not a valid sample line: ${line}`);
    const name = match[1] as string;
    const family = familyOf(name);
    if (!types.has(family)) throw new Error(`sample before its TYPE line: ${line}`);
    enter(family, line);
    const key = `${name}${match[2] ?? ""}`;
    if (samples.has(key)) throw new Error(`duplicate series: ${key}`);
    const value = Number(match[3] === "+Inf" ? Number.POSITIVE_INFINITY : match[3] === "-Inf" ? Number.NEGATIVE_INFINITY : match[3]);
    if (types.get(family) === "counter" && !(value >= 0)) throw new Error(`counter below zero: ${line}`);
    samples.set(key, value);
  }
  // Histograms: per label set, buckets never decrease and le="+Inf" equals _count.
  for (const [family, type] of types) {
    if (type !== "histogram") continue;
    const groups = new Map<string, { le: number; value: number }[]>();
    for (const [key, value] of samples) {
      if (!key.startsWith(`${family}_bucket{`)) continue;
      const le = /le="([^"]+)"/.exec(key)?.[1];
      if (le === undefined) throw new Error(`bucket without le: ${key}`);
      const rest = key
        .slice(`${family}_bucket`.length)
        .replace(/,?le="[^"]+"/, "")
        .replace("{,", "{");
      groups.set(rest, [...(groups.get(rest) ?? []), { le: le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), value }]);
    }
    for (const [labels, buckets] of groups) {
      buckets.sort((a, b) => a.le - b.le);
      for (let i = 1; i < buckets.length; i++) {
        if ((buckets[i]?.value ?? 0) < (buckets[i - 1]?.value ?? 0)) throw new Error(`${family}${labels}: buckets decrease`);
      }
      const count = samples.get(`${family}_count${labels === "{}" ? "" : labels}`);
      if (buckets.at(-1)?.le !== Number.POSITIVE_INFINITY || buckets.at(-1)?.value !== count) throw new Error(`${family}${labels}: +Inf bucket is not _count`);
    }
  }
  return { types, samples };
}

const token = "metrics-test-token-0123456789";

async function backdate(queueDatabaseUrl: string, jobId: string, ms: number): Promise<void> {
  const client = new pg.Client({ connectionString: queueDatabaseUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query("UPDATE bullmq.job SET added_at_ms = added_at_ms - $2 WHERE queue = 'invoice-totals' AND id = $1", [jobId, ms]);
    expect(rowCount).toBe(1);
  } finally {
    await client.end();
  }
}

describe("/metrics", () => {
  let db: TestDatabase;
  let producer: Producer;
  // The queue without the producer's validation, on the backend under test.
  let rawQueue: AnyQueue;
  let worker: RunningWorker | undefined;
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  let config: ReturnType<typeof testConfig>;

  beforeAll(async () => {
    db = await createTestDatabase();
    config = testConfig(db.url, { DASHBOARD_TOKEN: token });
    producer = Producer.fromConfig(config);
    rawQueue = await producer.store.queue("invoice-totals");
    dashboard = await startDashboard({ config, logger: memoryLogger("warn").logger, host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    await worker?.close();
    await dashboard?.close();
    await rawQueue?.close();
    await producer?.close();
    await db?.drop();
  });

  const scrape = async () => {
    const response = await fetch(`${dashboard.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseExposition(await response.text());
  };

  async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 45_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await read();
      if (done(value)) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  it("exports queue depths, the workers' counters and the duration histogram after real jobs ran", async () => {
    worker = await startWorker("invoice-totals", { config, logger: memoryLogger("silent").logger, metricsFlushMs: 100 });
    const good = await producer.enqueue("invoice-totals", { all: true });
    // A payload the producer would refuse, slipped in through raw BullMQ: the worker fails it without retries.
    const bad = await rawQueue.add("invoice-totals", { invoiceIds: "not-a-list" });
    await waitFor(
      () => good.getState(),
      (state) => state === "completed",
      "the good job to complete",
    );
    await waitFor(
      () => rawQueue.getJobState(bad.id as string),
      (state) => state === "failed",
      "the bad job to fail",
    );

    const q = 'queue="invoice-totals"';
    const metrics = await waitFor(
      scrape,
      (m) => m.samples.get(`dbjobs_jobs_completed_total{${q}}`) === 1 && m.samples.get(`dbjobs_jobs_failed_total{${q}}`) === 1,
      "the worker to flush its counters",
    );

    expect(metrics.types.get("dbjobs_queue_jobs")).toBe("gauge");
    expect(metrics.samples.get(`dbjobs_queue_jobs{${q},state="completed"}`)).toBe(1);
    expect(metrics.samples.get(`dbjobs_queue_jobs{${q},state="failed"}`)).toBe(1);
    expect(metrics.samples.get(`dbjobs_queue_jobs{${q},state="waiting"}`)).toBe(0);
    expect(metrics.samples.get(`dbjobs_queue_workers{${q}}`)).toBe(1);
    expect(metrics.samples.get(`dbjobs_queue_paused{${q}}`)).toBe(0);

    expect(metrics.types.get("dbjobs_jobs_completed_total")).toBe("counter");
    expect(metrics.types.get("dbjobs_job_duration_seconds")).toBe("histogram");
    expect(metrics.samples.get(`dbjobs_job_duration_seconds_count{${q}}`)).toBe(1);
    expect(metrics.samples.get(`dbjobs_job_duration_seconds_bucket{le="+Inf",${q}}`)).toBe(1);
    expect(metrics.samples.get(`dbjobs_job_duration_seconds_sum{${q}}`)).toBeGreaterThanOrEqual(0);
    // Series every queue has from the start, so rate() and alerts work before the first event.
    expect(metrics.samples.get(`dbjobs_jobs_stalled_total{${q}}`)).toBe(0);
    expect(metrics.samples.has("dbjobs_slow_queries_total")).toBe(true);

    expect(metrics.types.get("dbjobs_schedule_missed_fires")).toBe("gauge");
    expect(metrics.samples.has('dbjobs_schedule_missed_fires{schedule="transaction-retry-every-minute",queue="transaction-retry"}')).toBe(true);
    expect(metrics.types.get("dbjobs_dashboard_process_cpu_seconds_total")).toBe("counter");
  });

  it("exports whatever other processes flushed (cache hits and misses) as counters", async () => {
    // As another process (an older version, with other labels) would have flushed them.
    await producer.store.metrics().add([
      { metric: "dbjobs_cache_hits_total", sample: "dbjobs_cache_hits_total", labels: { tier: "memory" }, value: 3 },
      { metric: "dbjobs_cache_misses_total", sample: "dbjobs_cache_misses_total", labels: { tier: "memory" }, value: 2 },
    ]);
    const metrics = await scrape();
    expect(metrics.types.get("dbjobs_cache_hits_total")).toBe("counter");
    expect(metrics.samples.get('dbjobs_cache_hits_total{tier="memory"}')).toBe(3);
    expect(metrics.samples.get('dbjobs_cache_misses_total{tier="memory"}')).toBe(2);
  });

  it("reports the age of the oldest waiting job, computed at scrape time", async () => {
    await worker?.close();
    worker = undefined;
    const old = await rawQueue.add("invoice-totals", { all: true }, { timestamp: Date.now() - 90_000 });
    await rawQueue.add("invoice-totals", { all: true });
    // BullMQ's PostgreSQL backend stamps added_at itself and ignores `timestamp`: age the row directly.
    if (config.QUEUE_BACKEND === "postgres") await backdate(config.DATABASE_URL, String(old.id), 90_000);
    const metrics = await scrape();
    const q = 'queue="invoice-totals"';
    expect(metrics.samples.get(`dbjobs_queue_jobs{${q},state="waiting"}`)).toBe(2);
    expect(metrics.samples.get(`dbjobs_queue_oldest_waiting_age_seconds{${q}}`)).toBeGreaterThanOrEqual(89);
    expect(metrics.samples.get(`dbjobs_queue_oldest_waiting_age_seconds{${q}}`)).toBeLessThan(3600);
  });

  // On PostgreSQL the oldest is a min() over every waiting row, not a window of the wait list: the oldest
  // job here sits in the middle of 250, out of reach of 100 read from either end of any order.
  it.runIf(testQueueBackend() === "postgres")("finds the oldest waiting job among hundreds, wherever it sits", async () => {
    const added = await rawQueue.addBulk(Array.from({ length: 250 }, () => ({ name: "invoice-totals", data: { all: true } })));
    await backdate(config.DATABASE_URL, String(added[124]?.id), 7_200_000);
    const metrics = await scrape();
    const q = 'queue="invoice-totals"';
    expect(metrics.samples.get(`dbjobs_queue_jobs{${q},state="waiting"}`)).toBe(252);
    expect(metrics.samples.get(`dbjobs_queue_oldest_waiting_age_seconds{${q}}`)).toBeGreaterThanOrEqual(7199);
    expect(metrics.samples.get(`dbjobs_queue_oldest_waiting_age_seconds{${q}}`)).toBeLessThan(7300);
  });
});

describe("the metrics store", () => {
  let redis: Redis;
  beforeAll(() => {
    redis = testRedis();
  });
  afterAll(() => redis.disconnect());

  it("skips entries that are not valid series and keeps the rest parseable", async () => {
    const prefix = testPrefix();
    const store = redisMetricsStore(redis, prefix);
    await store.add([
      { metric: "dbjobs_jobs_completed_total", sample: "dbjobs_jobs_completed_total", labels: { queue: "a" }, value: 2 },
      { metric: "dbjobs_jobs_completed_total", sample: "dbjobs_jobs_completed_total", labels: { queue: "b" }, value: 1 },
    ]);
    await redis.hset(`${prefix}:dbjobs:metrics`, 'bad name{queue="a"}', "1", '["dbjobs_x_total","dbjobs_x_total",{"queue":1}]', "1");
    const { samples, unreadable } = await store.read();
    expect(unreadable).toBe(2);
    const parsed = parseExposition(await flushedMetricsRegistry(samples, []).metrics());
    expect(parsed.samples.get('dbjobs_jobs_completed_total{queue="a"}')).toBe(2);
    expect(parsed.samples.get('dbjobs_jobs_completed_total{queue="b"}')).toBe(1);
    await redis.del(`${prefix}:dbjobs:metrics`);
  });
});

describe("the exposition checker used above", () => {
  it.each([
    ["a sample before its TYPE", "x_total 1\n"],
    ["a family split in two", '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{l="2"} 1\n'],
    ["a +Inf bucket that differs from _count", '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 2\n'],
    ["an unquoted label value", "# TYPE g gauge\ng{l=x} 1\n"],
  ])("rejects %s", (_label, text) => {
    expect(() => parseExposition(text)).toThrow();
  });
});
