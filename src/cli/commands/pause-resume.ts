import type { Command } from "commander";
import { audited } from "../../audit/audited.js";
import { cliActor } from "../cli-operator.js";
import { createCliContext, printJson } from "../context.js";
import { withQueues } from "../operator-queues.js";

/** `pause` and `resume`: global for the queue, so every worker on every machine stops or starts taking jobs. */
export function registerPauseResumeCommands(program: Command): void {
  for (const verb of ["pause", "resume"] as const) {
    program
      .command(verb)
      .description(
        verb === "pause" ? "stop every worker taking new jobs from a queue (jobs in flight finish)" : "let workers take jobs from a paused queue again",
      )
      .argument("<queue>", "queue name")
      .option("--json", "print JSON")
      .action(async (queueName: string, options: { json?: boolean }) => {
        const context = createCliContext({ quiet: true });
        const audit = { actor: cliActor(context.config), source: "cli" as const, action: verb, target: queueName, parameters: { queue: queueName } };
        await withQueues(context, (queues) =>
          audited(context.db().pool, audit, async () => {
            const queue = await queues.open(queueName);
            if (verb === "pause") await queue.pause();
            else await queue.resume();
            const paused = await queue.isPaused();
            if (options.json) printJson({ queue: queueName, paused });
            else console.log(`${queueName} is ${paused ? "paused" : "running"}`);
            return { value: undefined, affected: null };
          }),
        );
      });
  }
}
