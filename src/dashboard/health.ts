import type pg from "pg";
import type { Logger } from "../lib/logger.js";
import type { OutageLog } from "../lib/outage-log.js";
import type { AnyQueue, QueueStore } from "../lib/queue-store.js";
import type { RedisConnection } from "../lib/redis.js";
import { redisErrorCode, waitForRedis } from "../lib/redis.js";

/**
 * `/health`, unauthenticated, so it says nothing secret: no URLs, host names or
 * server messages, only which dependency failed and its error code.
 *
 * - PostgreSQL (`SELECT 1`) or Redis (`PING`) failing → `down`, HTTP 503.
 * - A queue with no connected worker → `degraded`, still HTTP 200, with a
 *   warning: the dashboard itself works, and a queue scaled to zero on
 *   purpose must not make a load balancer pull the dashboard out of rotation.
 *   Alert on `dbjobs_queue_workers == 0` in Prometheus instead.
 */
export interface DependencyHealth {
  ok: boolean;
  latencyMs: number;
  /** Error code only (SQLSTATE, errno name, or "timeout"). */
  error?: string;
}

export interface HealthReport {
  status: "ok" | "degraded" | "down";
  checkedAt: string;
  postgres: DependencyHealth;
  /** The queue store: Redis, or the queue database on the PostgreSQL backend. */
  queueStore: DependencyHealth & { kind: QueueStore["kind"] };
  /** The same figures under their old name when the queues live in Redis. */
  redis?: DependencyHealth;
  /** Connected workers per queue; null when Redis could not be asked. */
  queues: { queue: string; workers: number | null }[];
  /** Why the status is `down`. */
  reasons: string[];
  /** Why the status is `degraded`. */
  warnings: string[];
}

export interface HealthSources {
  pool: pg.Pool;
  store: QueueStore;
  queues: readonly AnyQueue[];
  logger: Logger;
  /**
   * Logs PostgreSQL (DATABASE_URL) outages seen by the checks, once per outage
   * rather than once per poll; keep one for the process. The queue store logs
   * its own outages (queue-store.ts, redis.ts). @defaultValue none: failures log at debug
   */
  postgresOutage?: OutageLog;
  /** Each check gives up after this long. @defaultValue 3000 */
  timeoutMs?: number;
}

class CheckTimeout extends Error {
  readonly code = "timeout";
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new CheckTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function errorCode(err: unknown): string {
  // A QueueBackendUnavailableError's own code only says "unavailable"; its reasonCode says why (ECONNREFUSED...).
  const reasonCode = (err as { reasonCode?: unknown }).reasonCode;
  const code = typeof reasonCode === "string" ? reasonCode : (err as { code?: unknown }).code;
  if (typeof code === "string" && /^[A-Za-z0-9_]{1,40}$/.test(code)) return code;
  return err instanceof Error ? err.name : "error";
}

async function check(name: string, run: () => Promise<unknown>, timeoutMs: number, logger: Logger, outage?: OutageLog): Promise<DependencyHealth> {
  const started = Date.now();
  try {
    await withTimeout(run(), timeoutMs);
    outage?.up();
    return { ok: true, latencyMs: Date.now() - started };
  } catch (err) {
    const error = errorCode(err);
    // Every poll fails the same way during an outage: the outage log says so once, the details stay at debug.
    outage?.down(error);
    logger.debug({ err, dependency: name }, "health check failed");
    return { ok: false, latencyMs: Date.now() - started, error };
  }
}

/** While disconnected, the reason is the connection's own error code (ECONNREFUSED...), not the offline-queue refusal a PING would get. */
async function pingRedis(redis: RedisConnection, timeoutMs: number): Promise<void> {
  const code = redisErrorCode(redis);
  if (code) throw Object.assign(new Error(`Redis is not connected (${code})`), { code });
  // Still making its first connection: wait for it rather than report an outage.
  if (redis.status !== "ready") await waitForRedis(redis, "redis://", timeoutMs);
  await redis.ping();
}

export async function checkHealth(sources: HealthSources): Promise<HealthReport> {
  const timeoutMs = sources.timeoutMs ?? 3000;
  const { store } = sources;
  const [postgres, queueStore] = await Promise.all([
    check("postgres", () => sources.pool.query("SELECT 1"), timeoutMs, sources.logger, sources.postgresOutage),
    check(store.kind, () => (store.redis ? pingRedis(store.redis, timeoutMs) : store.ready(timeoutMs)), timeoutMs, sources.logger),
  ]);
  const queues = await Promise.all(
    sources.queues.map(async (queue) => {
      if (!queueStore.ok) return { queue: queue.name, workers: null };
      try {
        return { queue: queue.name, workers: await withTimeout(queue.getWorkersCount(), timeoutMs) };
      } catch (err) {
        sources.logger.warn({ err, queue: queue.name }, "could not count workers");
        return { queue: queue.name, workers: null };
      }
    }),
  );

  const reasons: string[] = [];
  if (!postgres.ok) reasons.push(`PostgreSQL did not answer SELECT 1 (${postgres.error})`);
  if (!queueStore.ok) reasons.push(store.redis ? `Redis did not answer PING (${queueStore.error})` : `The queue database did not answer (${queueStore.error})`);
  const warnings = queues.filter((entry) => entry.workers === 0).map((entry) => `no worker connected to queue ${entry.queue}`);
  if (queueStore.ok) warnings.push(...queues.filter((entry) => entry.workers === null).map((entry) => `could not count the workers of queue ${entry.queue}`));

  return {
    status: reasons.length > 0 ? "down" : warnings.length > 0 ? "degraded" : "ok",
    checkedAt: new Date().toISOString(),
    postgres,
    queueStore: { kind: store.kind, ...queueStore },
    ...(store.redis ? { redis: queueStore } : {}),
    queues,
    reasons,
    warnings,
  };
}
