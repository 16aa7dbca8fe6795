import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, queueStoreOptions } from "../src/lib/config.js";
import { createQueueStore, type QueueStore } from "../src/lib/queue-store.js";
import { schedulerLock } from "../src/queues/scheduler-lock.js";
import { deleteTestKeys, memoryLogger, testConfig, testRedis, testRedisClusterNodes } from "./support/test-env.js";

// Only the `redis-cluster` project runs this file; it needs no database.
const unusedDatabaseUrl = "postgresql://postgres@127.0.0.1:5432/unused";
const queues = ["bulk-messaging", "invoice-totals", "partition-maintenance", "archiving", "db-maintenance", "cache-prefetch", "transaction-retry"];

describe("Redis Cluster: hash-tag prefixes", () => {
  const config = testConfig(unusedDatabaseUrl);
  let store: QueueStore;
  let cluster: Cluster;

  beforeAll(() => {
    store = createQueueStore({ ...queueStoreOptions(config), role: "worker", logger: memoryLogger("warn").logger });
    cluster = store.redis as Cluster;
  });

  afterAll(async () => {
    await deleteTestKeys(cluster, `{${config.QUEUE_PREFIX}*`);
    await store.close();
  });

  /** Every key of the cluster matching `pattern`, from each master (KEYS only sees the node it is sent to). */
  async function keysOf(pattern: string): Promise<string[]> {
    const found = await Promise.all(cluster.nodes("master").map((node) => node.keys(pattern)));
    return found.flat();
  }

  const slotOf = async (key: string) => Number(await cluster.cluster("KEYSLOT", key));

  it("the config names the cluster and the store connects through an ioredis Cluster", async () => {
    expect(config.REDIS_URL).toBeUndefined();
    expect(config.REDIS_CLUSTER_NODES).toHaveLength(3);
    expect(store.redis).toBeInstanceOf(Cluster);
    expect(store.setting).toBe("REDIS_CLUSTER_NODES");
    await store.ready(10_000);
  });

  it("each queue's BullMQ keys share one slot, and the queues spread over slots and masters", async () => {
    for (const name of queues) {
      const queue = await store.queue(name);
      await queue.add("probe", { n: 1 });
      await queue.add("later", { n: 2 }, { delay: 60_000 });
      await queue.close();
    }
    const slotsByQueue = new Map<string, number>();
    for (const name of queues) {
      const keys = await keysOf(`{${config.QUEUE_PREFIX}:${name}}:${name}:*`);
      // At least the job hashes, the wait list, the delayed set, meta and the id counter.
      expect(keys.length, name).toBeGreaterThanOrEqual(5);
      const slots = new Set(await Promise.all(keys.map(slotOf)));
      expect([...slots], `${name}: ${keys.join(" ")}`).toHaveLength(1);
      slotsByQueue.set(name, [...slots][0] as number);
    }
    expect(new Set(slotsByQueue.values()).size).toBe(queues.length);
    // Slot ranges are split three ways; seven queues landing on one master would mean the tag ignored the queue name.
    const masters = new Set<string>();
    for (const slot of slotsByQueue.values()) {
      const owner = (await cluster.cluster("SLOTS")).find(([from, to]) => slot >= from && slot <= to);
      masters.add(`${owner?.[2]?.[0]}:${owner?.[2]?.[1]}`);
    }
    expect(masters.size).toBeGreaterThan(1);
    // finishedSince reads a queue's finished set under the same per-queue prefix.
    expect(await store.finishedSince("invoice-totals", "completed", 0)).toBe(0);
  });

  it("dbjobs' own keys (metrics, scheduler lease) share the prefix's hash tag", async () => {
    await store.metrics().add([{ metric: "dbjobs_probe_total", sample: "dbjobs_probe_total", labels: {}, value: 1 }]);
    expect((await store.metrics().read()).samples.map((sample) => sample.metric)).toContain("dbjobs_probe_total");
    const lock = schedulerLock({ store, leaseMs: 5000 });
    expect(await lock.acquire()).toBe(true);
    const own = await keysOf(`{${config.QUEUE_PREFIX}}:*`);
    expect(await lock.holder()).not.toBeNull();
    await lock.release();
    // The metrics hash and the lease, at least.
    expect(own.length, own.join(" ")).toBeGreaterThanOrEqual(2);
    expect(new Set(await Promise.all(own.map(slotOf))).size).toBe(1);
  });
});

describe("REDIS_CLUSTER_NODES is opt-in and validated", () => {
  const base = { DATABASE_URL: unusedDatabaseUrl, QUEUE_BACKEND: "redis" };

  it("without it, one Redis and the prefixes as they were", async () => {
    const single = createQueueStore({ kind: "redis", redisConnection: testRedis(), prefix: "plain" });
    expect(single.prefix).toBe("plain");
    expect(single.queuePrefix("invoice-totals")).toBe("plain");
    expect(loadConfig(base).REDIS_URL).toBe("redis://127.0.0.1:6379");
    single.redis?.disconnect();
  });

  it("rejects a bad list, naming the variable and the format", () => {
    expect(() => loadConfig({ ...base, REDIS_CLUSTER_NODES: "127.0.0.1:7000,nohost" })).toThrow(
      /REDIS_CLUSTER_NODES: must be a comma-separated list of host:port.*"nohost"/,
    );
    expect(() => loadConfig({ ...base, REDIS_CLUSTER_NODES: "127.0.0.1:70000" })).toThrow(/REDIS_CLUSTER_NODES/);
  });

  it("refuses REDIS_URL beside it, and a backend other than redis", () => {
    expect(() => loadConfig({ ...base, REDIS_CLUSTER_NODES: testRedisClusterNodes() ?? "", REDIS_URL: "redis://127.0.0.1:6379" })).toThrow(
      /REDIS_CLUSTER_NODES: conflicts with REDIS_URL/,
    );
    expect(() => loadConfig({ ...base, QUEUE_BACKEND: "postgres", REDIS_CLUSTER_NODES: "127.0.0.1:7000" })).toThrow(
      /REDIS_CLUSTER_NODES: needs QUEUE_BACKEND=redis/,
    );
  });
});
