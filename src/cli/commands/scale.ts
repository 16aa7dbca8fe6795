import type { Command } from "commander";
import { checkConcurrency, scaleQueue } from "../../queues/scale-queue.js";
import { cliActor } from "../cli-operator.js";
import { createCliContext, printJson } from "../context.js";
import { checkQueueName, withQueues } from "../operator-queues.js";

export function registerScaleCommand(program: Command): void {
  program
    .command("scale")
    .description("set how many jobs of a queue every worker process runs at once; running workers change at once, and new ones start with it")
    .argument("<queue>", "queue name")
    .argument("<n>", "jobs at once per worker process, 1 to 1000")
    .option("--json", "print JSON")
    .action(async (queue: string, n: string, options: { json?: boolean }) => {
      checkQueueName(queue);
      const concurrency = checkConcurrency(n);
      const context = createCliContext({ quiet: true });
      await withQueues(context, async (queues) => {
        const outcome = await scaleQueue({
          pool: context.db().pool,
          store: queues.store,
          connectTimeoutMs: context.config.QUEUE_CONNECT_TIMEOUT_MS,
          logger: context.logger,
          queue,
          concurrency,
          actor: cliActor(context.config),
          via: "cli",
        });
        if (options.json) printJson(outcome);
        else console.log(`${queue}: concurrency ${outcome.previous ?? "(configured)"} → ${outcome.concurrency} on every worker`);
      });
    });
}
