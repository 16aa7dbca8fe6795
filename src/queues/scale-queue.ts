import type pg from "pg";
import { DbjobsError, UnknownQueueError } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import type { QueueStore } from "../lib/queue-store.js";
import { isQueueName, queueNames } from "./contracts.js";
import { publishControl } from "./control-channel.js";
import { recordOperatorAction } from "./operator-actions.js";
import { concurrencyRange, writeQueueConcurrency } from "./queue-settings.js";

/**
 * `dbjobs scale <queue> <n>`: stores the concurrency (so a worker started
 * later runs with it) and tells every running worker of the queue over the
 * control channel, which applies it at once. Stored first: a worker that
 * misses the message still gets it at its next start.
 */
export interface ScaleRequest {
  /** The application database's pool (dbjobs.queue_settings). */
  pool: Pick<pg.Pool, "query">;
  store: QueueStore;
  connectTimeoutMs: number;
  logger: Logger;
  queue: string;
  concurrency: number;
  actor: string;
  via: "cli" | "http";
}

export class InvalidConcurrencyError extends DbjobsError {
  constructor(value: unknown) {
    super(
      "DBJOBS_BAD_ARGUMENT",
      `Concurrency "${String(value)}" is not a whole number from ${concurrencyRange.min} to ${concurrencyRange.max}; give the jobs one worker process runs at once, e.g. \`dbjobs scale <queue> 4\`.`,
      { retryable: false },
    );
  }
}

export function checkConcurrency(value: unknown): number {
  const number = typeof value === "string" && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof number !== "number" || !Number.isInteger(number) || number < concurrencyRange.min || number > concurrencyRange.max) {
    throw new InvalidConcurrencyError(value);
  }
  return number;
}

export async function scaleQueue(request: ScaleRequest): Promise<{ queue: string; concurrency: number; previous: number | null }> {
  if (!isQueueName(request.queue)) throw new UnknownQueueError(request.queue, queueNames);
  const concurrency = checkConcurrency(request.concurrency);
  const previous = await writeQueueConcurrency(request.pool, request.queue, concurrency, request.actor);
  await publishControl(request.store, { type: "scale", queue: request.queue, concurrency }, request.connectTimeoutMs);
  await recordOperatorAction(
    { action: "scale", target: request.queue, actor: request.actor, via: request.via, detail: { concurrency, previous } },
    request.logger,
    request.pool,
  );
  return { queue: request.queue, concurrency, previous };
}
