import pg from "pg";
import type { Logger } from "../lib/logger.js";
import type { AnyQueue, QueueStore } from "../lib/queue-store.js";
import { warnUnlessNoEviction } from "../lib/redis.js";
import { backoffDelayMs } from "../lib/retry.js";
import { queueNames } from "./contracts.js";

/**
 * The relay of the job outbox (`dbjobs relay`, Procfile line `relay`). On the
 * Redis backend a job enqueued in an application transaction is a row of
 * `dbjobs.job_outbox` (src/queues/transactional-enqueue.ts, dbjobs.enqueue);
 * this process moves committed rows to BullMQ.
 *
 * Each pass is one PostgreSQL transaction: claim up to `batchSize` of the
 * oldest rows with FOR UPDATE SKIP LOCKED (so several relays share the work
 * and never hold the same row), add them to their queues with job id = the
 * row's id (or the caller's own jobId), delete them, commit. The relay wakes
 * on LISTEN dbjobs_outbox, which add_to_outbox notifies at the enqueuer's
 * commit, and polls every `pollIntervalMs` as well, so a lost connection or a
 * missed notification only delays a job.
 *
 * Why a crash creates no duplicate: a relay killed between the add and the
 * COMMIT loses its transaction (PostgreSQL rolls it back when the connection
 * drops), so its rows come back unclaimed; the next relay adds them again
 * with the same job ids, and BullMQ's add of an id that already exists
 * returns that job and creates nothing.
 *
 * The window that remains: the retry creates the job a second time if, by
 * then, the first copy has finished AND retention has removed it, which
 * frees its id. With the default retention (contract.ts defaultJobOptions:
 * completed jobs are kept 7 days and the newest 1000 per queue, failed ones
 * 30 days and 5000) the first copy is still there: the retry comes one poll
 * interval after the rows are unlocked, and they are unlocked as soon as the
 * dead relay's connection is gone, or, when its host vanished without closing
 * the socket, after idle_in_transaction_session_timeout (`idleTransactionTimeoutMs`,
 * 60 s) at the latest. A duplicate would need the first copy to run and then
 * 1000 newer jobs of the same queue to complete inside that minute. A queue
 * configured with `removeOnComplete: true` (or a tiny count) has the window
 * for real; its handlers should then be idempotent, as every handler here is.
 */
export interface OutboxRelayOptions {
  /** The application database, where dbjobs.job_outbox is (DATABASE_URL). */
  databaseUrl: string;
  /** Where the jobs go: the Redis store (any store works, e.g. to drain rows left after a switch to PostgreSQL). */
  store: QueueStore;
  logger: Logger;
  /** Outbox rows claimed, added and deleted per transaction. @defaultValue 500 */
  batchSize?: number;
  /** How often the outbox is read without a notification. @defaultValue 1000 */
  pollIntervalMs?: number;
  /** How long PostgreSQL keeps a claim whose relay went silent mid-pass before ending its session. @defaultValue 60000 */
  idleTransactionTimeoutMs?: number;
  /** Sent as application_name. @defaultValue dbjobs:relay */
  applicationName?: string;
}

export interface OutboxRelay {
  /** Jobs this relay has added (a re-add of an existing id included). */
  readonly relayed: number;
  /** Stops claiming, lets the pass in flight commit, and closes the relay's connections (not the store). */
  close(): Promise<void>;
}

/** The LISTEN channel dbjobs.add_to_outbox notifies. */
export const outboxChannel = "dbjobs_outbox";

// Takes $1 the declared queue names, $2 the batch size. Claims the oldest rows
// no other relay holds; they stay locked until this transaction ends. Rows of
// a queue no contract declares are left alone (see reportOutboxState).
const claimSql = `
SELECT "id"::text AS id, "queue", "name", "data", "opts", "enqueued_at_ms"::text AS enqueued_at_ms
  FROM "dbjobs"."job_outbox"
 WHERE "queue" = ANY($1::text[])
 ORDER BY "seq"
 LIMIT $2
   FOR UPDATE SKIP LOCKED`;

// Takes $1 the ids of the rows this transaction claimed and added.
const deleteSql = `DELETE FROM "dbjobs"."job_outbox" WHERE "id" = ANY($1::uuid[])`;

// Takes $1 the declared queue names. Returns the outbox rows of any other queue, per queue.
const undeclaredSql = `SELECT "queue", count(*)::int AS rows FROM "dbjobs"."job_outbox" WHERE NOT ("queue" = ANY($1::text[])) GROUP BY "queue"`;

// Takes nothing. Returns the backend the last `dbjobs migrate` recorded for dbjobs.enqueue, if any.
const recordedBackendSql = `SELECT "backend" FROM "dbjobs"."queue_backend"`;

interface OutboxRow {
  id: string;
  queue: string;
  name: string;
  data: unknown;
  opts: Record<string, unknown>;
  enqueued_at_ms: string;
}

/** How often a summary line is logged while jobs flow. */
const reportEveryMs = 10_000;

export async function startOutboxRelay(options: OutboxRelayOptions): Promise<OutboxRelay> {
  const logger = options.logger;
  const batchSize = options.batchSize ?? 500;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const applicationName = options.applicationName ?? "dbjobs:relay";
  const pool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: 1,
    application_name: applicationName,
    keepAlive: true,
    connectionTimeoutMillis: 5000,
    options: `-c idle_in_transaction_session_timeout=${Math.round(options.idleTransactionTimeoutMs ?? 60_000)}`,
  });
  pool.on("error", (err) => logger.warn({ err }, "idle outbox connection lost; the pool will reconnect"));
  const queues = new Map<string, Promise<AnyQueue>>();
  const queueFor = (name: string) => {
    let queue = queues.get(name);
    if (!queue) {
      // No defaultJobOptions: every row carries the complete options BullMQ built when it was enqueued.
      queue = options.store.queue(name);
      queues.set(name, queue);
    }
    return queue;
  };

  const wakeup = new Wakeup();
  let stopping = false;
  let relayed = 0;
  let sinceReport = 0;

  if (options.store.redis) await warnUnlessNoEviction(options.store.redis, logger);
  // Connected and scripts loaded before the first claim, so no pass holds its rows while a connection is being made.
  await Promise.all(queueNames.map(async (name) => (await queueFor(name)).waitUntilReady()));
  await reportOutboxState(pool, options.store.kind, logger).catch((err: unknown) =>
    logger.warn({ err }, "could not read the outbox at start; will keep trying"),
  );
  const listener = new OutboxListener(options.databaseUrl, applicationName, () => wakeup.wake(), logger);
  listener.start();

  /** One pass: claim, add, delete, commit. Returns how many rows it moved. */
  const relayBatch = async (): Promise<number> => {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const { rows } = await client.query<OutboxRow>(claimSql, [queueNames, batchSize]);
      if (rows.length === 0) {
        await client.query("COMMIT");
        return 0;
      }
      const byQueue = new Map<string, OutboxRow[]>();
      for (const row of rows) byQueue.set(row.queue, [...(byQueue.get(row.queue) ?? []), row]);
      for (const [name, group] of byQueue) {
        const queue = await queueFor(name);
        await queue.addBulk(
          group.map((row) => ({
            name: row.name,
            data: row.data,
            // The id makes a second add of this row (after a crash before COMMIT) a no-op; the timestamp makes delays count from the enqueue.
            opts: { ...row.opts, jobId: (row.opts.jobId as string | undefined) ?? row.id, timestamp: Number(row.enqueued_at_ms) },
          })),
        );
      }
      await client.query(deleteSql, [rows.map((row) => row.id)]);
      await client.query("COMMIT");
      return rows.length;
    } catch (err) {
      broken = err as Error;
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      // A client whose transaction failed is dropped rather than reused, in case its connection is the problem.
      client.release(broken);
    }
  };

  const loop = (async () => {
    let failures = 0;
    let lastReport = Date.now();
    while (!stopping) {
      let moved = 0;
      try {
        moved = await relayBatch();
        if (failures > 0) logger.info({ failures }, "outbox relay recovered");
        failures = 0;
      } catch (err) {
        failures += 1;
        if (failures === 1 || failures % 30 === 0) logger.warn({ err, failures }, "outbox pass failed; its rows stay in the outbox and are retried");
        await wakeup.wait(backoffDelayMs(failures, { baseDelayMs: 100, maxDelayMs: 5000 }));
        continue;
      }
      relayed += moved;
      sinceReport += moved;
      if (Date.now() - lastReport >= reportEveryMs) {
        if (sinceReport > 0) logger.info({ relayed: sinceReport }, "jobs relayed since the last report");
        sinceReport = 0;
        lastReport = Date.now();
      }
      // A full batch means more may be waiting: go again at once.
      if (moved < batchSize) await wakeup.wait(pollIntervalMs);
    }
  })();

  logger.info({ batchSize, pollIntervalMs, backend: options.store.kind }, "outbox relay started");

  let closing: Promise<void> | undefined;
  return {
    get relayed() {
      return relayed;
    },
    close() {
      closing ??= (async () => {
        stopping = true;
        wakeup.wake();
        await loop;
        await listener.close();
        await Promise.allSettled([...queues.values()].map(async (queue) => (await queue).close()));
        await pool.end().catch(() => undefined);
        logger.info({ relayed }, "outbox relay stopped");
      })();
      return closing;
    },
  };
}

/** Warns about what would leave jobs behind: rows of undeclared queues, and dbjobs.enqueue writing for another backend. */
async function reportOutboxState(pool: pg.Pool, backend: QueueStore["kind"], logger: Logger): Promise<void> {
  const { rows: recorded } = await pool.query<{ backend: string }>(recordedBackendSql);
  const sqlBackend = recorded[0]?.backend;
  if (sqlBackend !== backend) {
    logger.warn(
      { recorded: sqlBackend ?? null, backend },
      `dbjobs.enqueue in SQL writes for ${sqlBackend ?? "no backend yet"}, but this process runs with QUEUE_BACKEND=${backend}: run \`dbjobs migrate\` with the same QUEUE_BACKEND`,
    );
  }
  const { rows } = await pool.query<{ queue: string; rows: number }>(undeclaredSql, [queueNames]);
  for (const row of rows) {
    logger.warn(
      { queue: row.queue, rows: row.rows, knownQueues: queueNames },
      "outbox rows name a queue no contract declares; they stay in dbjobs.job_outbox until the queue is declared again or the rows are deleted",
    );
  }
}

/** A wait that a notification (or close) cuts short; a wake while busy makes the next wait return at once. */
class Wakeup {
  private pending = false;
  private interrupt: (() => void) | undefined;

  wake(): void {
    this.pending = true;
    this.interrupt?.();
  }

  async wait(ms: number): Promise<void> {
    if (!this.pending) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.interrupt = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.interrupt = undefined;
    }
    this.pending = false;
  }
}

/**
 * LISTEN on its own connection (a pooled one would lose the subscription),
 * reconnected with backoff whenever it drops. Every (re)connection wakes the
 * relay once, since notifications sent while it was away are lost.
 */
class OutboxListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    private readonly applicationName: string,
    private readonly onWake: () => void,
    private readonly logger: Logger,
  ) {}

  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ connectionString: this.url, application_name: this.applicationName, keepAlive: true });
    client.on("notification", () => this.onWake());
    // ── A listener's exception must never stop the relay: errors only schedule a reconnect. ──
    client.on("error", (err) => {
      this.logger.debug({ err }, "outbox LISTEN connection error");
    });
    client.on("end", () => {
      if (this.client === client) this.client = undefined;
      this.retryLater();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${outboxChannel}`);
      if (this.stopped) {
        await client.end().catch(() => undefined);
        return;
      }
      if (this.failures > 0) this.logger.info("outbox LISTEN connection restored");
      this.failures = 0;
      this.client = client;
      this.onWake();
    } catch (err) {
      this.failures += 1;
      if (this.failures === 1) this.logger.warn({ err }, "cannot LISTEN for outbox rows; polling meanwhile, and reconnecting");
      await client.end().catch(() => undefined);
      this.retryLater();
    }
  }

  private retryLater(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        void this.connect();
      },
      backoffDelayMs(this.failures + 1, { baseDelayMs: 200, maxDelayMs: 5000 }),
    );
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
