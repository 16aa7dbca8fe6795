import pg from "pg";
import type { Logger } from "../lib/logger.js";
import { redactUrl } from "../lib/logger.js";
import { cacheNotifyChannel, invalidateCacheKeys, parseInvalidationPayload } from "./cache-invalidation.js";
import { type InvalidationLink, type LinkEvents, PendingInvalidations, reconnectDelayMs } from "./cache-links.js";

/** application_name of the listening connection, as pg_stat_activity shows it. */
export const cacheListenerApplicationName = "dbjobs:cache";

/**
 * Invalidation without Redis: one dedicated PostgreSQL connection per cache
 * that LISTENs on `dbjobs_cache_invalidate`, where jobs (and this cache's own
 * `invalidate`) send `pg_notify` with a JSON array of keys. A pool cannot do
 * this: LISTEN belongs to a session, and a pooled connection is handed to
 * whoever asks next.
 *
 * - The connection is replaced when it is lost (a restart, a failover,
 *   pg_terminate_backend), with backoff from 100 ms to 2 s, and LISTENs again.
 *   Its 'error' events always have a listener here: a lost connection never
 *   ends the process.
 * - Notifications sent while it was away are lost, so the cache is told to
 *   clear its memory when it is back.
 * - One warning per outage, one info line on return; invalidations made
 *   meanwhile are kept and sent once it is back.
 */
export class PostgresInvalidationLink implements InvalidationLink {
  readonly via = "postgres" as const;
  private readonly pending = new PendingInvalidations();
  private client: pg.Client | undefined;
  private listening = false;
  private everListened = false;
  private down = false;
  private closed = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly firstListen: Promise<void>;
  private markListening!: () => void;

  constructor(
    private readonly url: string,
    private readonly logger: Logger,
    private readonly events: LinkEvents,
  ) {
    this.firstListen = new Promise((resolve) => {
      this.markListening = resolve;
    });
    void this.connect();
  }

  get connected(): boolean {
    return this.listening && !this.closed;
  }

  async invalidate(keys: string[]): Promise<void> {
    const client = this.client;
    if (!client || !this.listening) {
      this.pending.add(keys);
      return;
    }
    try {
      // On the listening connection itself: no second connection per process.
      await invalidateCacheKeys(client, "", keys);
    } catch (err) {
      this.pending.add(keys);
      this.lost(client, err);
    }
  }

  async ready(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(resolve, timeoutMs, false);
      timer.unref();
    });
    const listening = await Promise.race([this.firstListen.then(() => true), timeout]);
    clearTimeout(timer);
    if (!listening) this.failed(new Error(`no answer from PostgreSQL at ${redactUrl(this.url)} at start-up`));
    return listening;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listening = false;
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    if (client) await endQuietly(client);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({
      connectionString: this.url,
      application_name: cacheListenerApplicationName,
      connectionTimeoutMillis: 5000,
      // A NOTIFY that gets no answer fails (and is kept for replay) rather than holding up the caller's invalidate.
      query_timeout: 5000,
      // A peer that vanished without a FIN (a failover, a dropped NAT entry) is noticed within about a minute.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    this.client = client;
    // ── Listeners below must never throw. ──
    client.on("error", (err) => this.lost(client, err));
    client.on("end", () => this.lost(client, new Error("connection to PostgreSQL ended")));
    client.on("notification", (message) => {
      if (message.channel !== cacheNotifyChannel) return;
      const keys = parseInvalidationPayload(message.payload);
      if (keys) this.events.onKeys(keys);
      else this.logger.warn({ payload: message.payload?.slice(0, 200) }, "ignored a malformed cache invalidation notification");
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${cacheNotifyChannel}`);
    } catch (err) {
      this.lost(client, err);
      return;
    }
    if (this.client !== client) return; // lost, or closed, while connecting
    this.listening = true;
    this.attempt = 0;
    if (this.everListened) {
      this.events.onResumed();
      this.logger.info("cache invalidation channel back; in-memory tier cleared");
    } else if (this.down) {
      this.logger.info("cache invalidation channel (PostgreSQL) available");
    }
    this.everListened = true;
    this.down = false;
    this.markListening();
    void this.replay(client);
  }

  /** The connection failed or ended: forget it and schedule the next one. Idempotent per connection. */
  private lost(client: pg.Client, err: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.listening = false;
    void endQuietly(client);
    if (this.closed) return;
    this.failed(err);
    this.retryTimer = setTimeout(() => void this.connect(), reconnectDelayMs(this.attempt++));
    this.retryTimer.unref();
  }

  private failed(err: unknown): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      "cache invalidation channel (PostgreSQL LISTEN) lost; reconnecting, and answering from memory and the database meanwhile",
    );
  }

  private async replay(client: pg.Client): Promise<void> {
    if (this.pending.size === 0) return;
    const keys = this.pending.take();
    try {
      await invalidateCacheKeys(client, "", keys);
      this.logger.info({ keys: keys.length }, "replayed cache invalidations made while PostgreSQL was unreachable");
    } catch (err) {
      this.pending.add(keys);
      this.lost(client, err);
    }
  }
}

/** Ends a client without waiting long for a peer that is gone; never throws. */
async function endQuietly(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.end().catch(() => undefined),
    new Promise((resolve) => {
      timer = setTimeout(resolve, 1000);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}
