import { readFile } from "node:fs/promises";
import { type Command, InvalidArgumentError } from "commander";
import { audited } from "../../audit/audited.js";
import { DbjobsError, PayloadValidationError } from "../../lib/errors.js";
import { getContract } from "../../queues/contracts.js";
import { checkEnqueueOptions, type EnqueueOptions, parseOptionNumber } from "../../queues/job-options.js";
import { validatePayload } from "../../queues/validate-payload.js";
import { JobWaitError, waitForJob } from "../../queues/wait-for-job.js";
import { cliActor } from "../cli-operator.js";
import { createCliContext, printJson } from "../context.js";

async function readPayload(data: string | undefined): Promise<unknown> {
  if (data === undefined) return {};
  let text = data;
  if (data.startsWith("@")) {
    const path = data.slice(1);
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      const reason = (err as { code?: string }).code === "ENOENT" ? "no such file" : (err as Error).message;
      throw new DbjobsError("DBJOBS_BAD_ARGUMENT", `--data @${path}: cannot read the file (${reason}); give the path of a JSON file, or the JSON itself.`, {
        retryable: false,
      });
    }
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DbjobsError("DBJOBS_BAD_JSON", `--data is not valid JSON (${(err as Error).message}); pass a JSON object or @path/to/file.json.`);
  }
}

function parseTimeoutMs(value: string): number {
  const ms = Number(value);
  // Node's timers take at most 2^31 - 1 ms.
  if (!Number.isInteger(ms) || ms <= 0 || ms > 2_147_483_647) {
    throw new InvalidArgumentError("use a whole number of milliseconds from 1 to 2147483647 (about 24 days), e.g. --timeout 60000");
  }
  return ms;
}

export function registerEnqueueCommand(program: Command): void {
  program
    .command("enqueue")
    .description("validate a payload and add a job; --wait blocks until it ends and prints its result")
    .argument("<queue>", "queue name")
    .option("--data <json>", "payload as JSON, or @file.json", undefined)
    .option("--priority <n>", "1 (highest) to 2097152; without it the job goes before every prioritized one")
    .option("--deadline-ms <ms>", "stop the job (as a cancel does) if one attempt runs longer; fails it with JOB_DEADLINE")
    .option("--wait", "wait for the job to finish; exit 1 if it failed")
    .option("--timeout <ms>", "give up waiting after this long", parseTimeoutMs, 3_600_000)
    .option("--json", "print JSON")
    .action(async (queue: string, options: { data?: string; priority?: string; deadlineMs?: string; wait?: boolean; timeout: number; json?: boolean }) => {
      const jobOptions: EnqueueOptions = {};
      const priority = parseOptionNumber(options.priority, "priority");
      const deadlineMs = parseOptionNumber(options.deadlineMs, "deadlineMs");
      if (priority !== undefined) jobOptions.priority = priority;
      if (deadlineMs !== undefined) jobOptions.deadlineMs = deadlineMs;
      checkEnqueueOptions(jobOptions);
      const context = createCliContext({ quiet: true });
      try {
        const contract = getContract(queue);
        const payload = await readPayload(options.data);
        // A bad payload is reported whether or not the queue store answers.
        try {
          validatePayload(contract.name, contract.payload, payload);
        } catch (err) {
          if (err instanceof PayloadValidationError && options.data === undefined) {
            throw new DbjobsError("DBJOBS_INVALID_PAYLOAD", `${err.message} No --data was given: pass the payload with --data '<json>' or --data @file.json.`);
          }
          throw err;
        }
        const producer = context.producer();
        await producer.ready();
        if (options.wait && (await (await producer.queue(contract.name)).isPaused())) {
          throw new DbjobsError(
            "DBJOBS_QUEUE_PAUSED",
            `Queue "${queue}" is paused, so --wait would wait until it is resumed; nothing was enqueued. Run \`dbjobs resume ${queue}\` first, or enqueue without --wait.`,
          );
        }
        // Subscribe before adding so a fast job cannot finish unseen.
        const events = options.wait ? await producer.store.queueEvents(queue) : undefined;
        await events?.waitUntilReady();
        let job: Awaited<ReturnType<typeof producer.enqueueUnknown>>;
        // The payload itself is not audited: it may hold personal data; the job id leads to it.
        const audit = {
          actor: cliActor(context.config),
          source: "cli" as const,
          action: "enqueue",
          target: queue,
          parameters: { queue, wait: Boolean(options.wait) },
        };
        try {
          job = await audited(context.db().pool, audit, async () => {
            const added = await producer.enqueueUnknown(queue, payload, jobOptions);
            return { value: added, affected: 1, parameters: { jobId: added.id } };
          });
        } catch (err) {
          await events?.close();
          throw err;
        }
        if (!events) {
          if (options.json) printJson({ queue, jobId: job.id });
          else console.log(`enqueued ${queue} job ${job.id}`);
          return;
        }
        try {
          const result = await waitForJob(job, events, options.timeout);
          if (options.json) printJson({ queue, jobId: job.id, state: "completed", result });
          else {
            console.log(`job ${job.id} completed`);
            printJson(result);
          }
        } catch (err) {
          const message = (err as Error).message;
          // A wait that ended without the outcome is not the job's failure.
          const [state, line] = err instanceof JobWaitError ? [err.reason, message] : ["failed", `job ${job.id} failed: ${message}`];
          if (options.json) printJson({ queue, jobId: job.id, state, error: message });
          else process.stderr.write(`${line}\n`);
          process.exitCode = 1;
        } finally {
          await events.close();
        }
      } finally {
        await context.close();
      }
    });
}
