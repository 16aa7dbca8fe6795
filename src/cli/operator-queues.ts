import type { Job } from "bullmq";
import { queueStoreOptions } from "../lib/config.js";
import { UnknownQueueError } from "../lib/errors.js";
import { type AnyQueue, createQueueStore, type QueueStore } from "../lib/queue-store.js";
import { isQueueName, type QueueName, queueNames } from "../queues/contracts.js";
import type { CliContext } from "./context.js";
import { BadArgumentError, BadJobStateError, UnknownJobError } from "./operator-errors.js";

/**
 * What the operator verbs share: a queue by name (any known queue), state
 * names checked against BullMQ's, and durations like `15m`.
 */
export const listableStates = ["waiting", "active", "delayed", "prioritized", "failed", "completed", "waiting-children"] as const;
export type ListableState = (typeof listableStates)[number];

export const cleanableStates = ["completed", "failed", "waiting", "delayed", "prioritized"] as const;
export type CleanableState = (typeof cleanableStates)[number];

export function parseState<S extends string>(state: string, allowed: readonly S[]): S {
  if (!(allowed as readonly string[]).includes(state)) throw new BadJobStateError(state, allowed);
  return state as S;
}

export function checkQueueName(name: string): QueueName {
  if (!isQueueName(name)) throw new UnknownQueueError(name, queueNames);
  return name;
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `500ms`, `30s`, `15m`, `2h`, `7d`, `1w`, or plain milliseconds. */
export function parseDurationMs(text: string, optionName: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$/.exec(text.trim());
  if (!match) throw new BadArgumentError(`${optionName} "${text}" is not a duration; write e.g. 30s, 15m, 2h or 7d.`);
  return Math.round(Number(match[1]) * (durationUnits[match[2] ?? "ms"] as number));
}

export function parseLimit(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new BadArgumentError(`--limit "${text}" must be a positive whole number.`);
  return value;
}

/** Opens queues on the configured queue store, failing fast when it does not answer; `close()` closes them all. */
export class OperatorQueues {
  private opened: QueueStore | undefined;
  private readonly queues = new Map<string, AnyQueue>();

  constructor(private readonly context: CliContext) {}

  /** Connects once; fails fast with what to do when the queue store cannot be reached. */
  async connect(): Promise<void> {
    if (this.opened) return;
    this.opened = createQueueStore({ ...queueStoreOptions(this.context.config), role: "producer", poolSize: 2, applicationName: "dbjobs:cli" });
    await this.opened.ready(this.context.config.QUEUE_CONNECT_TIMEOUT_MS);
  }

  get store(): QueueStore {
    if (!this.opened) throw new Error("OperatorQueues.connect() must be awaited first");
    return this.opened;
  }

  get prefix(): string {
    return this.context.config.QUEUE_PREFIX;
  }

  async open(name: string): Promise<AnyQueue> {
    const queueName = checkQueueName(name);
    let queue = this.queues.get(queueName);
    if (!queue) {
      queue = await this.store.queue(queueName);
      this.queues.set(queueName, queue);
    }
    return queue;
  }

  async job(name: string, id: string): Promise<Job> {
    const job = await (await this.open(name)).getJob(id);
    if (!job) throw new UnknownJobError(name, id);
    return job;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    await this.opened?.close();
  }
}

/** Runs `action` with queues open, and closes everything after. */
export async function withQueues<T>(context: CliContext, action: (queues: OperatorQueues) => Promise<T>): Promise<T> {
  const queues = new OperatorQueues(context);
  try {
    await queues.connect();
    return await action(queues);
  } finally {
    await queues.close();
    await context.close();
  }
}

export function isoTime(millis: number | null | undefined): string | null {
  return millis ? new Date(millis).toISOString() : null;
}

/** `3m 12s`-style age for tables. */
export function formatAge(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "-";
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86_400)}d ${Math.floor((seconds % 86_400) / 3600)}h`;
}
