import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { packageRoot } from "../src/lib/paths.js";
import { benchRun } from "./bench-run.js";

/**
 * Worker processes for the bench: a script of this package started as a
 * child process the run tracks (bench-run.ts ends it with the run), compiled
 * when the bench runs built (`npm run bench`) and through tsx when it runs
 * from source.
 */
const built = import.meta.url.endsWith(".js");

export interface BenchProcess {
  child: ChildProcess;
  pid: number;
  /** What the process wrote to stderr so far. */
  stderr(): string;
  /** Whether it has exited (by itself or by a signal). */
  exited(): boolean;
  /** SIGTERM (a worker drains), SIGKILL after `timeoutMs`; resolves once it has exited. */
  stop(timeoutMs?: number): Promise<void>;
}

/** This process's environment with `overrides` on top; an undefined override removes the variable. */
export function childEnv(overrides: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/**
 * Node flags of the Procfile's `worker-<queue>` line, so the bench measures
 * the worker as it is deployed (bulk-messaging's heap and young-generation sizes).
 */
export function procfileNodeFlags(queue: string): string[] {
  const line = readFileSync(`${packageRoot}/Procfile`, "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(`worker-${queue}:`));
  return (line?.split(/\s+/) ?? []).filter((token) => token.startsWith("--"));
}

/**
 * Starts `script` (a path from the package root without its extension, e.g.
 * "src/cli/index") with `args`. With `ipc`, the child can `process.send`.
 */
export function spawnBenchProcess(script: string, args: string[], env: NodeJS.ProcessEnv, options: { nodeFlags?: string[]; ipc?: boolean } = {}): BenchProcess {
  const file = fileURLToPath(new URL(`../${script}.${built ? "js" : "ts"}`, import.meta.url));
  const nodeArgs = [...(options.nodeFlags ?? []), ...(built ? [] : ["--import", "tsx"]), file, ...args];
  const child = benchRun.trackChild(
    spawn(process.execPath, nodeArgs, { cwd: packageRoot, env, stdio: options.ipc ? ["ignore", "ignore", "pipe", "ipc"] : ["ignore", "ignore", "pipe"] }),
  );
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += String(chunk);
  });
  const hasExited = () => child.exitCode !== null || child.signalCode !== null;
  const exited = new Promise<void>((resolve) => {
    if (hasExited()) resolve();
    else child.once("exit", () => resolve());
  });
  return {
    child,
    pid: child.pid as number,
    stderr: () => stderr,
    exited: hasExited,
    async stop(timeoutMs = 30_000) {
      if (!hasExited()) {
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.kill("SIGTERM");
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/** `dbjobs worker <queue>` with the Procfile's node flags for that queue. */
export function spawnCliWorker(queue: string, env: Record<string, string | undefined>): BenchProcess {
  return spawnBenchProcess("src/cli/index", ["worker", queue], childEnv(env), { nodeFlags: procfileNodeFlags(queue) });
}
