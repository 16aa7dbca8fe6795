import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * A throwaway Redis Cluster of three masters (no replicas) on free local
 * ports, for the `redis-cluster` test project and the scaling bench (so no
 * vitest here): redis-server --cluster-enabled yes ×3, joined by
 * `redis-cli --cluster create`.
 */
export interface RedisCluster {
  /** `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`, as REDIS_CLUSTER_NODES takes it. */
  nodes: string;
  stop(): Promise<void>;
}

/** Can `port` be bound on 127.0.0.1 right now? */
async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A free port P whose cluster bus port P + 10000 is free too. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if ((await portFree(port)) && (await portFree(port + 10_000))) return port;
  }
  throw new Error("no free port pair (P, P+10000) for a Redis Cluster node");
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 30_000 });
  return stdout;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`Redis Cluster: ${what} not reached within ${timeoutMs} ms`);
    await sleep(100);
  }
}

export interface StartRedisClusterOptions {
  /** Called with each redis-server process as it starts: the bench hands them to its run, which ends them if it is interrupted. */
  onSpawn?: (child: ChildProcess) => void;
}

export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), "dbjobs-redis-cluster-"));
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freeClusterPort(taken);
    taken.add(port).add(port + 10_000);
    ports.push(port);
  }
  const children: ChildProcess[] = ports.map((port) =>
    spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file", join(dir, `nodes-${port}.conf`)].concat([
        "--dir",
        dir,
        "--appendonly",
        "no",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
      ]),
      { stdio: "ignore" },
    ),
  );
  for (const child of children) options.onSpawn?.(child);
  // A process someone else killed (the bench's run, on Ctrl-C) has a signalCode and no exitCode.
  const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    for (const child of children) if (running(child)) child.kill("SIGKILL");
    await Promise.all(children.map((child) => (running(child) ? new Promise((resolve) => child.once("exit", resolve)) : undefined)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) await waitFor(`node ${port} answering`, async () => (await cli(port, "PING")).trim() === "PONG", 10_000);
    await run("redis-cli", ["--cluster", "create", ...ports.map((port) => `127.0.0.1:${port}`), "--cluster-replicas", "0", "--cluster-yes"], {
      timeout: 60_000,
    });
    // Every node must see the whole cluster, or a client may be redirected to one that does not yet know its slots.
    for (const port of ports)
      await waitFor(`cluster_state:ok on ${port}`, async () => (await cli(port, "CLUSTER", "INFO")).includes("cluster_state:ok"), 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes: ports.map((port) => `127.0.0.1:${port}`).join(","), stop };
}
