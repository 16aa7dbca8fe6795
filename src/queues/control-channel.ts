import pg from "pg";
import { type Config, queueStoreOptions } from "../lib/config.js";
import type { Logger } from "../lib/logger.js";
import { type QueueStore, queueDatabasePool } from "../lib/queue-store.js";
import type { RedisConnection } from "../lib/redis.js";

/**
 * Operator commands for running workers, sent through the queue backend so
 * they reach every worker process wherever it runs: Redis PUBLISH on
 * `<prefix>:control`, or PostgreSQL NOTIFY on `dbjobs_control` in the queue
 * database (the prefix travels in the message). Each worker process keeps one
 * subscription (startControlListener) and acts on the messages for its queue.
 * A message sent while a worker is disconnected is lost to it: the cancel
 * command re-sends until the job leaves `active`, and scale is also stored, so
 * a worker reads it again when it starts.
 */
export type ControlMessage = { type: "cancel"; queue: string; jobId: string; reason: string } | { type: "scale"; queue: string; concurrency: number };

/** The PostgreSQL NOTIFY channel; one for all prefixes (the queue database is the namespace). */
export const controlNotifyChannel = "dbjobs_control";

export function controlRedisChannel(prefix: string): string {
  return `${prefix}:control`;
}

export async function publishControl(store: QueueStore, message: ControlMessage, connectTimeoutMs: number): Promise<void> {
  const text = JSON.stringify({ ...message, prefix: store.prefix });
  if (store.redis) {
    await store.redis.publish(controlRedisChannel(store.prefix), text);
    return;
  }
  const pool = await queueDatabasePool(store, connectTimeoutMs);
  await pool.query("SELECT pg_notify($1, $2)", [controlNotifyChannel, text]);
}

export interface ControlListener {
  /** Resolves once subscribed (the first time). */
  ready: Promise<void>;
  close(): Promise<void>;
}

function parse(text: string, prefix: string): ControlMessage | undefined {
  try {
    const message = JSON.parse(text) as ControlMessage & { prefix?: string };
    if (message.prefix !== prefix) return undefined;
    if (message.type === "cancel" && typeof message.jobId === "string") return message;
    if (message.type === "scale" && Number.isInteger(message.concurrency)) return message;
  } catch {
    // Not ours.
  }
  return undefined;
}

/** One per worker process. `onMessage` must not throw (a listener's exception must never stop a worker); errors are logged. */
export function startControlListener(options: {
  store: QueueStore;
  config: Config;
  logger: Logger;
  onMessage(message: ControlMessage): void;
}): ControlListener {
  const { store, logger } = options;
  const deliver = (text: string) => {
    const message = parse(text, store.prefix);
    if (!message) return;
    try {
      options.onMessage(message);
    } catch (err) {
      logger.error({ err, control: message.type }, "control message failed");
    }
  };
  if (store.redis) return redisListener(store.redis, controlRedisChannel(store.prefix), logger, deliver);
  const url = queueStoreOptions(options.config).databaseUrl;
  if (!url) throw new Error("no queue database URL");
  return postgresListener(url, logger, deliver);
}

function redisListener(redis: RedisConnection, channel: string, logger: Logger, deliver: (text: string) => void): ControlListener {
  // A subscribed connection can do nothing else; ioredis subscribes it again after a reconnect.
  const subscriber = redis.duplicate();
  subscriber.on("error", (err: Error) => logger.debug({ err: err.message }, "control subscriber error; reconnecting"));
  subscriber.on("message", (received: string, text: string) => {
    if (received === channel) deliver(text);
  });
  const ready = subscriber.subscribe(channel).then(() => undefined);
  ready.catch((err: unknown) => logger.warn({ err }, "could not subscribe to control messages; cancel and scale will not reach this worker"));
  return {
    ready,
    async close() {
      subscriber.disconnect();
    },
  };
}

function postgresListener(url: string, logger: Logger, deliver: (text: string) => void): ControlListener {
  let client: pg.Client | undefined;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });

  const connect = async (attempt: number): Promise<void> => {
    if (closed) return;
    const next = new pg.Client({ connectionString: url, application_name: "dbjobs:control", keepAlive: true });
    const retry = () => {
      if (closed || client !== next) return;
      client = undefined;
      next.end().catch(() => undefined);
      retryTimer = setTimeout(() => void connect(attempt + 1), Math.min(2000, 100 * 2 ** attempt));
      retryTimer.unref();
    };
    client = next;
    next.on("error", (err) => {
      logger.debug({ err: err.message }, "control listener connection lost; reconnecting");
      retry();
    });
    next.on("end", retry);
    next.on("notification", (notification) => {
      if (notification.channel === controlNotifyChannel && notification.payload) deliver(notification.payload);
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${controlNotifyChannel}`);
      attempt = 0;
      markReady();
    } catch (err) {
      logger.debug({ err }, "control listener could not connect; retrying");
      retry();
    }
  };
  void connect(0);
  return {
    ready,
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      const current = client;
      client = undefined;
      await current?.end().catch(() => undefined);
    },
  };
}
