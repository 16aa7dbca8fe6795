import { readFile } from "node:fs/promises";
import { QueueEvents } from "bullmq";
import type { Command } from "commander";
import { DbjobsError } from "../../lib/errors.js";
import { createRedis } from "../../lib/redis.js";
import { getContract } from "../../queues/contracts.js";
import { createCliContext, printJson } from "../context.js";

async function readPayload(data: string | undefined): Promise<unknown> {
  if (data === undefined) return {};
  const text = data.startsWith("@") ? await readFile(data.slice(1), "utf8") : data;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DbjobsError("DBJOBS_BAD_JSON", `--data is not valid JSON (${(err as Error).message}); pass a JSON object or @path/to/file.json.`);
  }
}

export function registerEnqueueCommand(program: Command): void {
  program
    .command("enqueue")
    .description("validate a payload and add a job; --wait blocks until it ends and prints its result")
    .argument("<queue>", "queue name")
    .option("--data <json>", "payload as JSON, or @file.json", undefined)
    .option("--wait", "wait for the job to finish; exit 1 if it failed")
    .option("--timeout <ms>", "give up waiting after this long", (value) => Number.parseInt(value, 10), 3_600_000)
    .option("--json", "print JSON")
    .action(async (queue: string, options: { data?: string; wait?: boolean; timeout: number; json?: boolean }) => {
      const context = createCliContext({ quiet: true });
      try {
        getContract(queue);
        const payload = await readPayload(options.data);
        // Subscribe before adding so a fast job cannot finish unseen.
        const eventsConnection = options.wait ? createRedis(context.config.REDIS_URL, "worker") : undefined;
        const events = eventsConnection ? new QueueEvents(queue, { connection: eventsConnection, prefix: context.config.QUEUE_PREFIX }) : undefined;
        await events?.waitUntilReady();
        const job = await context.producer().enqueueUnknown(queue, payload);
        if (!events) {
          if (options.json) printJson({ queue, jobId: job.id });
          else console.log(`enqueued ${queue} job ${job.id}`);
          return;
        }
        try {
          const result = await job.waitUntilFinished(events, options.timeout);
          if (options.json) printJson({ queue, jobId: job.id, state: "completed", result });
          else {
            console.log(`job ${job.id} completed`);
            printJson(result);
          }
        } catch (err) {
          const message = (err as Error).message;
          if (options.json) printJson({ queue, jobId: job.id, state: "failed", error: message });
          else process.stderr.write(`job ${job.id} failed: ${message}\n`);
          process.exitCode = 1;
        } finally {
          await events.close();
          eventsConnection?.disconnect();
        }
      } finally {
        await context.close();
      }
    });
}
