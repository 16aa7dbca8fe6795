import { type ChildProcess, spawn } from "node:child_process";
import { packageRoot } from "../../src/lib/paths.js";
import type { RedisClusterNode } from "../../src/lib/redis.js";

/**
 * Runs the real CLI in a child process (from source, through tsx), for tests
 * that kill workers, send signals or check exit codes and printed output.
 */
export interface CliRun {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when stdout or stderr has printed a line matching `pattern`. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

export function spawnCli(args: string[], env: Record<string, string>): CliRun {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/index.ts", ...args], {
    cwd: packageRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  const check = () => {
    for (const waiter of [...waiters]) {
      if (waiter.pattern.test(out) || waiter.pattern.test(err)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  child.stdout?.on("data", (chunk) => {
    out += String(chunk);
    check();
  });
  child.stderr?.on("data", (chunk) => {
    err += String(chunk);
    check();
  });
  // "close", not "exit": it comes once the child's stdout and stderr are read to the end, so output
  // written just before exiting is in stdout()/stderr() by the time `exited` resolves.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForOutput(pattern, timeoutMs = 30_000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern} in output:\n${out}\n${err}`)), timeoutMs);
        waiters.push({
          pattern,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
        check();
      });
    },
  };
}

/** Runs the CLI to completion. */
export async function runCli(args: string[], env: Record<string, string>, timeoutMs = 60_000) {
  const run = spawnCli(args, env);
  const timer = setTimeout(() => run.child.kill("SIGKILL"), timeoutMs);
  const { code } = await run.exited;
  clearTimeout(timer);
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** The environment a CLI child needs to reach the test's database, queue backend and prefix. */
export function cliEnv(
  config: {
    DATABASE_URL: string;
    DIRECT_DATABASE_URL?: string;
    QUEUE_BACKEND: string;
    QUEUE_DATABASE_URL?: string;
    REDIS_URL?: string;
    REDIS_CLUSTER_NODES?: readonly RedisClusterNode[];
    QUEUE_PREFIX: string;
  },
  extra: Record<string, string> = {},
): Record<string, string> {
  const env: Record<string, string> = {
    DATABASE_URL: config.DATABASE_URL,
    // Blank when unset, so an inherited one cannot leak in (loadConfig drops empty values).
    DIRECT_DATABASE_URL: config.DIRECT_DATABASE_URL ?? "",
    QUEUE_BACKEND: config.QUEUE_BACKEND,
    QUEUE_PREFIX: config.QUEUE_PREFIX,
    LOG_LEVEL: "info",
  };
  if (config.QUEUE_DATABASE_URL) env.QUEUE_DATABASE_URL = config.QUEUE_DATABASE_URL;
  if (config.REDIS_URL) env.REDIS_URL = config.REDIS_URL;
  if (config.REDIS_CLUSTER_NODES) env.REDIS_CLUSTER_NODES = clusterNodesText(config.REDIS_CLUSTER_NODES);
  return { ...env, ...extra };
}

/** Parsed cluster nodes back into REDIS_CLUSTER_NODES's `host:port,...`. */
export function clusterNodesText(nodes: readonly RedisClusterNode[]): string {
  return nodes.map((node) => `${node.host}:${node.port}`).join(",");
}
