import type { Command } from "commander";
import { exitOnSignals } from "../../lib/shutdown.js";
import { createCliContext } from "../context.js";

export function registerWorkerCommand(program: Command): void {
  program
    .command("worker")
    .description("run the worker of one queue until SIGTERM (which drains in-flight jobs)")
    .argument("<queue>", "queue name")
    .option("--concurrency <n>", "jobs at once in this process", (value) => Number.parseInt(value, 10))
    .action(async (queue: string, options: { concurrency?: number }) => {
      const context = createCliContext();
      // Only this verb loads the handlers (and with them the jobs' code); every other verb works from the contracts.
      const { startWorker } = await import("../../queues/start-worker.js");
      const running = await startWorker(queue, { config: context.config, logger: context.logger, concurrency: options.concurrency });
      exitOnSignals(() => running.close(), { timeoutMs: context.config.SHUTDOWN_TIMEOUT_MS, logger: context.logger.child({ queue }) });
    });
}
