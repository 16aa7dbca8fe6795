import type { Command } from "commander";
import { audited } from "../../audit/audited.js";
import { cliActor } from "../cli-operator.js";
import { createCliContext, printJson } from "../context.js";
import { BadArgumentError } from ".././operator-errors.js";
import { cleanableStates, parseDurationMs, parseState, withQueues } from "../operator-queues.js";

/** Jobs removed per BullMQ call; the loop keeps going until a call removes fewer. */
const BATCH = 1000;

export function registerCleanCommand(program: Command): void {
  program
    .command("clean")
    .description("delete a queue's jobs in one state that are older than a duration")
    .argument("<queue>", "queue name")
    .option("--state <state>", `one of ${cleanableStates.join(", ")}`)
    .option("--older-than <duration>", "e.g. 30s, 15m, 2h, 7d")
    .option("--json", "print JSON")
    .action(async (queueName: string, options: { state?: string; olderThan?: string; json?: boolean }) => {
      if (!options.state || !options.olderThan) {
        throw new BadArgumentError(`Say what to clean: \`dbjobs clean ${queueName} --state completed --older-than 7d\` (both options are required).`);
      }
      const state = parseState(options.state, cleanableStates);
      const graceMs = parseDurationMs(options.olderThan, "--older-than");
      const context = createCliContext({ quiet: true });
      const audit = {
        actor: cliActor(context.config),
        source: "cli" as const,
        action: "clean",
        target: queueName,
        parameters: { queue: queueName, state, olderThanMs: graceMs },
      };
      await withQueues(context, (queues) =>
        audited(context.db().pool, audit, async () => {
          const queue = await queues.open(queueName);
          let removed = 0;
          for (;;) {
            const ids = await queue.clean(graceMs, BATCH, state === "waiting" ? "wait" : state);
            removed += ids.length;
            if (ids.length < BATCH) break;
          }
          if (options.json) printJson({ queue: queueName, state, olderThanMs: graceMs, removed });
          else console.log(`removed ${removed} ${state} job${removed === 1 ? "" : "s"} older than ${options.olderThan} from ${queueName}`);
          return { value: undefined, affected: removed };
        }),
      );
    });
}
